"""Offline evaluation on a faq-bench directory: recall@k, MRR@10 and end-to-end latency per mode."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from .config import Settings
from .errors import DataError
from .fetch import sha256_of
from .index import build, index_meta
from .kb import count_lines, read_jsonl
from .pipeline import Searcher

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


def evaluate(searcher: Searcher, bench: Path, split: str, mode: str, index: str, queries: list[dict]) -> dict:
    """Run every query of the split through the library; one summary row."""
    depth = max(CUTOFFS)
    for row in queries[:WARMUP_QUERIES]:
        searcher.search(row["query"], depth, mode, index=index, matches=False)
    hits_at = {c: 0 for c in CUTOFFS}
    reciprocal_ranks, latencies = [], []
    answered = answered_right = 0
    for row in queries:
        started = time.perf_counter()
        result = searcher.search(row["query"], depth, mode, index=index, matches=False)
        latencies.append((time.perf_counter() - started) * 1000)
        relevant = set(row["relevant"])
        rank = next((i for i, h in enumerate(result.hits, start=1) if h.faq_id in relevant), None)
        for c in CUTOFFS:
            hits_at[c] += bool(rank and rank <= c)
        reciprocal_ranks.append(1 / rank if rank and rank <= 10 else 0.0)
        if result.decision.action == "answer":
            answered += 1
            answered_right += rank == 1
    n = len(queries)
    out = {"bench": bench.resolve().name, "split": split, "mode": mode, "queries": n}
    out.update({f"R@{c}": round(hits_at[c] / n, 4) for c in CUTOFFS})
    out["MRR@10"] = round(sum(reciprocal_ranks) / n, 4)
    out["p50_ms"] = round(_percentile(latencies, 50), 2)
    out["p95_ms"] = round(_percentile(latencies, 95), 2)
    # The decision: only mode rerank answers (its thresholds apply to rerank logits); the others suggest.
    out["answered"] = round(answered / n, 4)
    out["answer_precision"] = round(answered_right / answered, 4) if answered else None
    return out
