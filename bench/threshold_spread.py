"""How far the calibrated answer threshold moves with the dev sample alone: the decision refitted on bootstrap
resamples of a model's diac dev rows, its thresholds chosen as `es-faq calibrate` does with --confidence (default:
0, the dev rates; the shipped features, bounds 5% near-miss / 2% no-match false answers), each applied to the same
test rows.

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

from es_faq.config.load import load_settings
from es_faq.evaluation import calibrate as cal
from es_faq.evaluation.bench import load_queries
from es_faq.search.decide import DEFAULT_FEATURES

BOUNDS = (0.05, 0.02)
RATES = ("coverage", "near_miss_false_answer_rate", "no_match_false_answer_rate", "wrong_faq_rate")
# Issue 19's bounds on test: near-miss and no-match false answers, answers with the wrong FAQ.
TEST_BOUNDS = {"near_miss_false_answer_rate": 0.05, "no_match_false_answer_rate": 0.02, "wrong_faq_rate": 0.005}


def on_test(dev: list[dict], test: list[dict], answer: float | None = None, confidence: float | None = None) -> dict:
    """Test figures of the decision fitted on `dev`, at its chosen answer threshold or at `answer`."""
    fitted = cal.fitted(dev, DEFAULT_FEATURES, *BOUNDS, confidence=confidence)
    answer = fitted.answer_threshold if answer is None else answer
    o = cal.outcomes(cal.with_probabilities(test, fitted), answer, min(fitted.suggest_threshold, answer))
    return {"answer_threshold": answer, **{r: o[r] for r in RATES}}


def judged(rows: list[dict], bench: Path, split: str, judgements: Path) -> list[dict]:
    """The cached rows (in the split's query order) relabelled as `es-faq eval --judgements` counts them: a query
    judged "same" as an FAQ is a paraphrase of it, answered right when its leader is one of its FAQs."""
    plain, marked = load_queries(bench, split), load_queries(bench, split, judgements=judgements)
    if len(plain) != len(rows):
        raise SystemExit(f"{len(rows)} cached {split} rows, but {bench} has {len(plain)} {split} queries")
    out = []
    for row, query in zip(rows, marked, strict=True):
        if "judged" in query:
            row = {**row, "kind": "paraphrase", "right": row["top"] in query["relevant"], "near_miss_hit": False}
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--judgements", type=Path, help="relabel the test rows with a person's judgements "
                        "(bench/judgements/diac.jsonl), as `es-faq eval --judgements` does")
    parser.add_argument("--judged-dev", action="store_true", help="relabel the dev rows with --judgements too, "
                        "as `es-faq calibrate --judgements` does")
    parser.add_argument("--bench", type=Path, help="the rows' faq-bench (default: diac under bench_dir)")
    parser.add_argument("--confidence", type=float, help="choose thresholds on the false-answer rates' upper "
                        "confidence bounds (es_faq.evaluation.calibrate.upper_rate) instead of the rates")
    args = parser.parse_args()
    dev, test = rows(args.folder, "dev"), rows(args.folder, "test")
    bench = args.bench or load_settings().bench_dir / "diac"
    if args.judgements:
        test = judged(test, bench, "test", args.judgements)
        if args.judged_dev:
            dev = judged(dev, bench, "dev", args.judgements)
    rng = np.random.default_rng(args.seed)
    draws = [on_test([dev[i] for i in rng.integers(0, len(dev), len(dev))], test, confidence=args.confidence)
             for _ in range(args.resamples)]
    thresholds = collections.Counter(d["answer_threshold"] for d in draws)
    print(json.dumps({
        "folder": str(args.folder), "resamples": args.resamples, "seed": args.seed, "confidence": args.confidence,
        "judgements": str(args.judgements) if args.judgements else None, "judged_dev": args.judged_dev,
        "whole_dev": on_test(dev, test, confidence=args.confidence),
        "bagged": on_test(dev, test, round(float(np.median([d["answer_threshold"] for d in draws])), 2)),
        "answer_threshold_share": {str(t): round(n / len(draws), 3) for t, n in sorted(thresholds.items())},
        "test_percentiles_5_50_95": {r: [round(float(np.percentile([d[r] for d in draws], q)), 4) for q in (5, 50, 95)]
                                     for r in RATES},
        # How often a calibration from such a dev sample breaks each test bound, and any of them.
        "test_bound_broken_share": {**{r: round(float(np.mean([d[r] > b for d in draws])), 3)
                                       for r, b in TEST_BOUNDS.items()},
                                    "any": round(float(np.mean([any(d[r] > b for r, b in TEST_BOUNDS.items())
                                                                for d in draws])), 3)}}, indent=1))


if __name__ == "__main__":
    main()
