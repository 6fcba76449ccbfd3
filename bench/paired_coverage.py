"""Two cross-encoders' decisions on the same diac test queries, compared query by query: which paraphrases one
answers and the other does not, and a paired bootstrap of the change in coverage and in false answers.

    python bench/paired_coverage.py bench/results/reranker-zh-s3/both bench/results/reranker-zh-s4/both

Each DIR holds the rows bench/decision_ablation.py cached (rows-*-diac-dev.jsonl, rows-*-diac-test.jsonl; the same
queries in the same order, whatever the model). Each model's decision is fitted and thresholded on its own dev
rows as `es-faq calibrate --confidence 0` does (the shipped features, bounds 5% near-miss / 2% no-match false
answers held on the dev rates, as every comparison here was made); the second is compared with the first (JSON),
at each model's own thresholds and along the frontier (coverage, near-miss and no-match false-answer rates at the
same answer thresholds)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from es_faq.evaluation import calibrate as cal
from es_faq.search.decide import DEFAULT_FEATURES


def rows(folder: Path, split: str) -> list[dict]:
    found = sorted(folder.glob(f"rows-*-diac-{split}.jsonl"))
    if len(found) != 1:
        raise SystemExit(f"{folder}: expected one rows-*-diac-{split}.jsonl (bench/decision_ablation.py --out "
                         f"{folder}), found {[p.name for p in found]}")
    return [json.loads(line) for line in found[0].open(encoding="utf-8")]


def decided(folder: Path) -> tuple[list[dict], dict]:
    """Test rows with the probability of the decision fitted on the folder's dev rows, and its thresholds."""
    dev = rows(folder, "dev")
    fitted = cal.fitted(dev, DEFAULT_FEATURES, 0.05, 0.02)
    return cal.with_probabilities(rows(folder, "test"), fitted), {"answer": fitted.answer_threshold,
                                                                   "suggest": fitted.suggest_threshold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    (a, a_at), (b, b_at) = decided(args.first), decided(args.second)
    if len(a) != len(b) or any(x["kind"] != y["kind"] for x, y in zip(a, b, strict=True)):
        raise SystemExit("the two folders' test rows are not the same queries in the same order")

    rng = np.random.default_rng(args.seed)
    out: dict = {"first": str(args.first), "second": str(args.second), "thresholds": [a_at, b_at]}
    for kind, rate in (("paraphrase", "coverage"), ("near_miss", "near_miss_false_answer_rate"),
                       ("no_match", "no_match_false_answer_rate")):
        index = [i for i, r in enumerate(a) if r["kind"] == kind]
        x = np.array([cal.counts(a[i], a_at["answer"]) for i in index], dtype=float)
        y = np.array([cal.counts(b[i], b_at["answer"]) for i in index], dtype=float)
        draws = rng.integers(0, len(index), size=(args.resamples, len(index)))
        change = (y[draws] - x[draws]).mean(axis=1)
        out[rate] = {"queries": len(index), "first": round(float(x.mean()), 4), "second": round(float(y.mean()), 4),
                     "change": round(float((y - x).mean()), 4),
                     "change_95": [round(float(v), 4) for v in np.percentile(change, [2.5, 97.5])],
                     "gained": int(((y == 1) & (x == 0)).sum()), "lost": int(((y == 0) & (x == 1)).sum())}
    # Each model's own thresholds set its operating point; the frontier says whether it gained coverage at the same
    # false-answer rates (every answer threshold of a grid, both models, on test).
    reported = ("coverage", "near_miss_false_answer_rate", "no_match_false_answer_rate")
    out["frontier"] = []
    for t in (0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8, 0.85):
        point: dict = {"answer_threshold": t}
        for side, decided_rows, at in (("first", a, a_at), ("second", b, b_at)):
            found = cal.outcomes(decided_rows, t, min(t, at["suggest"]))
            point[side] = [found[k] for k in reported]
        out["frontier"].append(point)
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
