"""Offline evaluation on a faq-bench directory: recall@k, MRR@10 and end-to-end latency per mode."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..config import Settings
from ..errors import DataError
from ..kb.faq import count_lines, read_jsonl
from ..kb.index import build, index_meta
from ..models.maven import sha256_of
from ..search.pipeline import Searcher

CUTOFFS = (1, 5, 10, 50)
DEFAULT_EMBED_MODEL = Settings.__dataclass_fields__["embed_model"].default
WARMUP_QUERIES = 5


def load_queries(bench: Path, split: str, limit: int | None = None) -> list[dict]:
    path = bench / "queries.jsonl"
    if not path.exists():
        raise DataError(f"{path} not found; --bench must be a faq-bench directory (faqs.jsonl + queries.jsonl)")
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    rows = [r for r in rows if split == "all" or r.get("split") == split]
    if not rows:
        raise DataError(f"no queries with split {split!r} in {path}")
    return rows[:limit] if limit else rows


def ensure_bench_index(searcher: Searcher, bench: Path, progress: bool = True) -> str:
    """The bench's own alias, rebuilt only when faqs.jsonl, the embedding model or the dictionaries changed.

    Each embedding model other than the default gets an alias of its own, so comparing models
    (docs/benchmarks.md, ablation) does not rebuild one index back and forth."""
    faqs = bench / "faqs.jsonl"
    model = searcher.embedder.manifest.name
    suffix = "" if model == DEFAULT_EMBED_MODEL else f"--{model}"
    alias = f"bench-{bench.resolve().name}{suffix}".lower()
    wanted = {"source": str(faqs.resolve()), "source_sha256": sha256_of(faqs),
              "model": searcher.embedder.manifest.name, "dictionary_version": searcher.analyzer.rewriter.version}
    meta = index_meta(searcher.client, alias) or {}
    if any(meta.get(k) != v for k, v in wanted.items()):
        build(searcher.client, searcher.settings, read_jsonl(faqs), searcher.analyzer, searcher.embedder,
              alias=alias, total=count_lines(faqs), meta=wanted, progress=progress)
    return alias


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
    if calibration is not None and calibration.applies_to("hybrid" if mode == "rerank" else mode):
        answer, suggest = thresholds(searcher.settings, calibration)
        out["decision"] = outcomes(rows, answer, suggest)
    return out, rows
