"""Offline evaluation on a faq-bench directory: recall@k, MRR@10 and end-to-end latency per mode."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..search.pipeline import Searcher

CUTOFFS = (1, 5, 10, 50)
WARMUP_QUERIES = 5


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def evaluate(searcher: Searcher, bench: Path, split: str, mode: str, index: str, queries: list[dict],
             progress: bool = False) -> tuple[dict, list[dict]]:
    """Run every query of the split through the library: one summary row, and the per-query rows.

    Recall and MRR are over the queries that have an FAQ (paraphrases); the decision is reported at
    the configured thresholds, for every kind of query the bench holds (es_faq/evaluation/calibrate.py)."""
    from ..search.decide import thresholds
    from .calibrate import collect, outcomes

    for row in queries[:WARMUP_QUERIES]:
        searcher.search(row["query"], max(CUTOFFS), mode, index=index)
    rows = collect(searcher, index, queries, mode, depth=max(CUTOFFS), progress=progress)
    answerable = [r for r in rows if r["kind"] == "paraphrase"]
    n = len(answerable)
    out: dict = {"bench": bench.resolve().name, "split": split, "mode": mode, "queries": len(queries),
                 "paraphrases": n}
    out.update({f"R@{c}": round(sum(bool(r["rank"] and r["rank"] <= c) for r in answerable) / n, 4) if n else None
                for c in CUTOFFS})
    out["MRR@10"] = round(sum(1 / r["rank"] for r in answerable if r["rank"] and r["rank"] <= 10) / n, 4) if n else None
    latencies = [r["latency_ms"] for r in rows]
    out["p50_ms"] = round(_percentile(latencies, 50), 2)
    out["p95_ms"] = round(_percentile(latencies, 95), 2)
    calibration = searcher.calibration if searcher.settings.decide_depth else None
    if calibration is not None and calibration.applies_to("hybrid" if mode == "rerank" else mode, searcher.settings):
        answer, suggest = thresholds(searcher.settings, calibration)
        out["decision"] = outcomes(rows, answer, suggest)
    return out, rows
