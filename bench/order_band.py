"""What reading the reverse order only near a threshold (decide_order_band) costs the decision; and a cascade:
a cheaper cross-encoder first, the shipped one only near the cheaper one's thresholds.

    python bench/order_band.py bench/results/reranker-zh-sym [--band 0.15 ...]
    python bench/order_band.py bench/results/reranker-zh-s3 --first bench/results/reranker-zh-mini/one

Replays the rows that bench/decision_ablation.py cached for one cross-encoder in DIR/both (every pair read
both ways) and DIR/one (ES_FAQ_RERANK_BOTH_ORDERS=0: one order): the decision is fitted and thresholded
on diac dev's both-order rows as `es-faq calibrate --confidence 0` does (on the dev rates, as every
comparison here was made); then, for each band, a query whose one-order
P(right) lies within the band of the answer or the suggest threshold is decided on both orders and every
other query on its one order. With --first, the first pass is that directory's rows instead (another
cross-encoder's), fitted and thresholded on its own dev rows the same way, and a query near its thresholds
goes to DIR/both's decision. Prints, per band and split, the share of queries that read the second pass,
the share of actions that differ from DIR/both's alone, and the outcomes (JSON lines)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from es_faq.evaluation import calibrate as cal
from es_faq.search.decide import DEFAULT_FEATURES

REPORTED = ("coverage", "wrong_faq_rate", "near_miss_false_answer_rate", "no_match_false_answer_rate",
            "answer_precision")
# An action as a probability against thresholds 0.75 / 0.25: rows decided under different thresholds compared alike.
AS_PROBABILITY = {"answer": 1.0, "suggest": 0.5, "no_match": 0.0, "none": None}


def rows(directory: Path, split: str) -> list[dict]:
    (path,) = directory.glob(f"rows-*-diac-{split}.jsonl")
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def action(p: float | None, answer: float, suggest: float) -> str:
    return "none" if p is None else "answer" if p >= answer else "suggest" if p >= suggest else "no_match"


def fitted_on_dev(directory: Path, confidence: float | None = None) -> cal.Calibration:
    dev = rows(directory, "dev")
    return cal.fitted(dev, DEFAULT_FEATURES, 0.05, 0.02, bounded=dev, confidence=confidence)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path, help="decision_ablation's --out parent: holds both/ and one/")
    parser.add_argument("--band", type=float, action="append",
                        default=None, help="bands to replay (default 0, 0.05, ..., 0.3, and 1: both always)")
    parser.add_argument("--first", type=Path, default=None,
                        help="rows of another cross-encoder's decision to run first (a cascade); default: "
                             "RESULTS/one under RESULTS/both's calibration (the order band)")
    parser.add_argument("--confidence", type=float, default=None,
                        help="thresholds held on the rates' upper confidence bounds, as `es-faq calibrate` "
                             "(default: on the dev rates)")
    args = parser.parse_args()
    bands = args.band or [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 1.0]
    full_fit = fitted_on_dev(args.results / "both", args.confidence)
    first_dir = args.first or args.results / "one"
    first_fit = fitted_on_dev(first_dir, args.confidence) if args.first else full_fit
    limits = {"full": (full_fit.answer_threshold, full_fit.suggest_threshold),
              "first": (first_fit.answer_threshold, first_fit.suggest_threshold)}
    for split in ("dev", "test"):
        both = cal.with_probabilities(rows(args.results / "both", split), full_fit)
        one = cal.with_probabilities(rows(first_dir, split), first_fit)
        for a, b in zip(both, one, strict=True):
            assert (a["kind"], a["top"]) == (b["kind"], b["top"]), "the runs searched other queries"
        for band in bands:
            mixed, second, changed = [], 0, 0
            for full, first in zip(both, one, strict=True):
                p = first["probability"]
                near = p is None or any(abs(p - t) < band for t in limits["first"])
                chosen, which = (full, "full") if near else (first, "first")
                second += near
                taken = action(chosen["probability"], *limits[which])
                changed += taken != action(full["probability"], *limits["full"])
                mixed.append({**chosen, "probability": AS_PROBABILITY[taken]})
            out = cal.outcomes(mixed, 0.75, 0.25)
            print(json.dumps({"split": split, "band": band, "first": str(first_dir),
                              "answer_threshold": limits["first"][0], "suggest_threshold": limits["first"][1],
                              "second_pass": round(second / len(both), 4),
                              "actions_changed": round(changed / len(both), 4),
                              **{k: out[k] for k in REPORTED}}), flush=True)


if __name__ == "__main__":
    main()
