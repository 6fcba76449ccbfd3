"""What reading the reverse order only near a threshold (decide_order_band) costs the decision.

    python bench/order_band.py bench/results/reranker-zh-sym [--band 0.15 ...]

Replays the rows that bench/decision_ablation.py cached for one cross-encoder in DIR/both (every pair read
both ways) and DIR/one (ES_FAQ_RERANK_BOTH_ORDERS=0: one order): the decision is fitted and thresholded
on diac dev's both-order rows as `es-faq calibrate` does; then, for each band, a query whose one-order
P(right) lies within the band of the answer or the suggest threshold is decided on both orders and every
other query on its one order. Prints, per band and split, the share of queries that read the reverse
order, the share of actions that differ from reading both always, and the outcomes (JSON lines)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from es_faq.evaluation import calibrate as cal
from es_faq.search.decide import DEFAULT_FEATURES

REPORTED = ("coverage", "wrong_faq_rate", "near_miss_false_answer_rate", "no_match_false_answer_rate",
            "answer_precision")


def rows(directory: Path, split: str) -> list[dict]:
    (path,) = directory.glob(f"rows-*-diac-{split}.jsonl")
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def action(p: float | None, answer: float, suggest: float) -> str:
    return "none" if p is None else "answer" if p >= answer else "suggest" if p >= suggest else "no_match"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path, help="decision_ablation's --out parent: holds both/ and one/")
    parser.add_argument("--band", type=float, action="append",
                        default=None, help="bands to replay (default 0, 0.05, ..., 0.3, and 1: both always)")
    args = parser.parse_args()
    bands = args.band or [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 1.0]
    dev_both = rows(args.results / "both", "dev")
    fitted = cal.fitted(dev_both, DEFAULT_FEATURES, 0.05, 0.02, bounded=dev_both)
    answer, suggest = fitted.answer_threshold, fitted.suggest_threshold
    for split in ("dev", "test"):
        both = cal.with_probabilities(rows(args.results / "both", split), fitted)
        one = cal.with_probabilities(rows(args.results / "one", split), fitted)
        for a, b in zip(both, one, strict=True):
            assert (a["kind"], a["top"]) == (b["kind"], b["top"]), "the two runs searched different queries"
        for band in bands:
            mixed, reverse, changed = [], 0, 0
            for full, first in zip(both, one, strict=True):
                p = first["probability"]
                near = p is None or any(abs(p - t) < band for t in (answer, suggest))
                chosen = full if near else first
                reverse += near
                changed += (action(chosen["probability"], answer, suggest)
                            != action(full["probability"], answer, suggest))
                mixed.append(chosen)
            out = cal.outcomes(mixed, answer, suggest)
            print(json.dumps({"split": split, "band": band, "answer_threshold": answer, "suggest_threshold": suggest,
                              "reverse_read": round(reverse / len(both), 4),
                              "actions_changed": round(changed / len(both), 4),
                              **{k: out[k] for k in REPORTED}}), flush=True)


if __name__ == "__main__":
    main()
