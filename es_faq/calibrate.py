"""Thresholds for the decision, from a dev split: the precision of `answer` against the share answered.

Each query is searched twice in the mode being calibrated: as is, and with its gold FAQs hidden
(`exclude`), which is the knowledge base without them: those queries should end in `suggest` or
`no_match`.
"""

from __future__ import annotations

import math

from tqdm import tqdm

from .decide import ranking_score
from .pipeline import Searcher

MARGINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 2.0)  # fused scores differ by hundredths, logits by units
MIN_ANSWERED = 10  # a precision over fewer answered queries is noise


def collect(searcher: Searcher, index: str, queries: list[dict], mode: str, held_out: bool,
            progress: bool = True) -> list[dict]:
    rows = []
    label = "held-out" if held_out else "in-KB"
    for row in tqdm(queries, desc=f"calibrating ({label})", unit="query", disable=not progress):
        gold = set(row["relevant"])
        result = searcher.search(row["query"], 5, mode, index=index, matches=False,
                                 exclude=sorted(gold) if held_out else ())
        hits = result.hits
        scores = [ranking_score(h) for h in hits]
        rows.append({"top": scores[0] if scores else float("-inf"),
                     "margin": scores[0] - scores[1] if len(scores) > 1 else float("inf"),
                     "correct": bool(hits) and hits[0].faq_id in gold,
                     "in_top5": any(h.faq_id in gold for h in hits)})
    return rows


def _answered(rows: list[dict], threshold: float, margin: float) -> list[dict]:
    return [r for r in rows if r["top"] >= threshold and r["margin"] >= margin]


def curve(rows: list[dict], points: int = 20) -> list[dict]:
    """Precision of `answer` and the share answered, over thresholds (quantiles of the top score)."""
    tops = sorted(r["top"] for r in rows)
    thresholds = sorted({tops[int(i * (len(tops) - 1) / points)] for i in range(points + 1)})
    out = []
    for margin in MARGINS:
        for t in thresholds:
            answered = _answered(rows, t, margin)
            out.append({"threshold": round(t, 3), "margin": margin, "answered": round(len(answered) / len(rows), 4),
                        "precision": round(sum(r["correct"] for r in answered) / len(answered), 4) if answered else None})
    return out


def choose(rows: list[dict], held_out: list[dict], target: float) -> dict:
    """The (threshold, margin) answering the most queries at `target` precision, and the suggest
    threshold that best separates answerable queries (gold in the top 5) from held-out ones. When no
    threshold answers MIN_ANSWERED queries at that precision, answer_threshold is infinite."""
    best = None
    for margin in MARGINS:
        for t in sorted({r["top"] for r in rows}):
            answered = _answered(rows, t, margin)
            if len(answered) < MIN_ANSWERED:
                break
            precision = sum(r["correct"] for r in answered) / len(answered)
            if precision >= target and (best is None or len(answered) > best[2]):
                best = (t, margin, len(answered), precision)
    answerable = [r["top"] for r in rows if r["in_top5"]]
    absent = [r["top"] for r in held_out]

    def youden(t):
        return sum(s >= t for s in answerable) / max(1, len(answerable)) - sum(s >= t for s in absent) / max(1, len(absent))

    suggest = max(sorted(set(answerable + absent)), key=youden)
    if best is None:  # answering alone is not safe at this precision: never answer, only suggest
        return {"answer_threshold": math.inf, "answer_margin": 0.0, "suggest_threshold": round(suggest, 3)}
    return {"answer_threshold": round(best[0], 3), "answer_margin": best[1], "suggest_threshold": round(suggest, 3)}


def outcomes(rows: list[dict], thresholds: dict) -> dict:
    """How the split's queries end with these thresholds: shares of each action, answer precision."""
    counts = {"answer": 0, "suggest": 0, "no_match": 0}
    correct = 0
    for r in rows:
        if r["top"] >= thresholds["answer_threshold"] and r["margin"] >= thresholds["answer_margin"]:
            counts["answer"] += 1
            correct += r["correct"]
        elif r["top"] >= thresholds["suggest_threshold"]:
            counts["suggest"] += 1
        else:
            counts["no_match"] += 1
    n = len(rows)
    out = {action: round(c / n, 4) for action, c in counts.items()}
    out["answer_precision"] = round(correct / counts["answer"], 4) if counts["answer"] else None
    return out
