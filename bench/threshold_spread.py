"""How far the calibrated answer threshold moves with the dev sample alone: the decision refitted on bootstrap
resamples of a model's diac dev rows, its thresholds chosen as `es-faq calibrate` does (the shipped features,
bounds 5% near-miss / 2% no-match false answers), each applied to the same test rows.

    python bench/threshold_spread.py bench/results/reranker-zh-s4a/both [--resamples 200]

DIR holds the rows bench/decision_ablation.py cached (rows-*-diac-dev.jsonl, rows-*-diac-test.jsonl). Prints
one JSON object: the threshold the whole dev split picks and its test figures, then over the resamples the
share of each answer threshold and the 5th / 50th / 95th percentiles of test coverage and false-answer rates,
and the test figures at the median of the resamples' thresholds (a bagged choice). A spread as wide as the
differences between two models means those differences are the calibration's, not the models'."""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
from paired_coverage import rows  # bench/, the script's own folder: the cached rows read one way

from es_faq.evaluation import calibrate as cal
from es_faq.search.decide import DEFAULT_FEATURES

BOUNDS = (0.05, 0.02)
RATES = ("coverage", "near_miss_false_answer_rate", "no_match_false_answer_rate")


def on_test(dev: list[dict], test: list[dict], answer: float | None = None) -> dict:
    """Test figures of the decision fitted on `dev`, at its chosen answer threshold or at `answer`."""
    fitted = cal.fitted(dev, DEFAULT_FEATURES, *BOUNDS)
    answer = fitted.answer_threshold if answer is None else answer
    o = cal.outcomes(cal.with_probabilities(test, fitted), answer, min(fitted.suggest_threshold, answer))
    return {"answer_threshold": answer, **{r: o[r] for r in RATES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    dev, test = rows(args.folder, "dev"), rows(args.folder, "test")
    rng = np.random.default_rng(args.seed)
    draws = [on_test([dev[i] for i in rng.integers(0, len(dev), len(dev))], test) for _ in range(args.resamples)]
    thresholds = collections.Counter(d["answer_threshold"] for d in draws)
    print(json.dumps({
        "folder": str(args.folder), "resamples": args.resamples, "seed": args.seed,
        "whole_dev": on_test(dev, test),
        "bagged": on_test(dev, test, round(float(np.median([d["answer_threshold"] for d in draws])), 2)),
        "answer_threshold_share": {str(t): round(n / len(draws), 3) for t, n in sorted(thresholds.items())},
        "test_percentiles_5_50_95": {r: [round(float(np.percentile([d[r] for d in draws], q)), 4) for q in (5, 50, 95)]
                                     for r in RATES}}, indent=1))


if __name__ == "__main__":
    main()
