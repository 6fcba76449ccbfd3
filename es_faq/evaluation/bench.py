"""A faq-bench directory (faqs.jsonl + queries.jsonl): its queries, and its knowledge base indexed."""

from __future__ import annotations

import json
from pathlib import Path

from ..config.settings import Settings
from ..errors import DataError
from ..kb.faq import count_lines, read_jsonl
from ..kb.index import build, index_meta
from ..models.files import sha256_of
from ..search.pipeline import Searcher

DEFAULT_EMBED_MODEL = Settings.__dataclass_fields__["embed_model"].default


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
    (docs/benchmarks.md, "The first trained models: ablation on bq test") does not rebuild one index back and forth."""
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
