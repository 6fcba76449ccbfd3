"""A faq-bench directory (faqs.jsonl + queries.jsonl): its queries, and its knowledge base indexed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.settings import Settings
from ..errors import DataError
from ..kb.faq import count_lines, read_jsonl
from ..models.files import sha256_of

if TYPE_CHECKING:  # reading a bench's queries needs no engine: the trainers do it where none is installed
    from ..search.pipeline import Searcher

DEFAULT_EMBED_MODEL = Settings.__dataclass_fields__["embed_model"].default


# What a query is: it asks what an FAQ in `relevant` answers; it only looks like the FAQ in `near_miss` and asks
# something else; or nothing in the knowledge base answers it (es_faq/evaluation/calibrate.py).
KINDS = ("paraphrase", "near_miss", "no_match")
# What a person can say about a (query, FAQ) pair the bench's labels are silent or wrong about: "same"
# (the FAQ answers the query), "different" or "unclear" (looked at, left as the bench has it).
JUDGEMENTS = ("same", "different", "unclear")


def load_queries(bench: Path, split: str, limit: int | None = None, judgements: Path | None = None) -> list[dict]:
    """The split's queries; with `judgements`, each query judged "same" as an FAQ counts that FAQ as
    relevant (a no-match or near-miss query so judged becomes a paraphrase of it)."""
    path = bench / "queries.jsonl"
    if not path.exists():
        raise DataError(f"{path} not found; --bench must be a faq-bench directory (faqs.jsonl + queries.jsonl)")
    rows = read_query_rows(path, _faq_ids(bench))
    if judgements is not None:
        rows = apply_judgements(rows, read_judgements(judgements, bench, {r["qid"] for r in rows}))
    rows = [r for r in rows if split == "all" or r.get("split") == split]
    if not rows:
        raise DataError(f"no queries with split {split!r} in {path}")
    return rows[:limit] if limit else rows


def _faq_ids(bench: Path) -> set[str] | None:
    faqs = bench / "faqs.jsonl"
    if not faqs.exists():
        return None
    return {str(json.loads(line)["id"]) for line in faqs.open(encoding="utf-8") if line.strip()}


def _json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """Each non-blank line of a JSON-lines file that people edit, parsed, with where it is for an error."""
    for number, line in enumerate(path.open(encoding="utf-8"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); fix the line") from None


def read_query_rows(path: Path, faq_ids: set[str] | None = None) -> list[dict]:
    """A queries.jsonl's rows, each checked: a query, `relevant` FAQ ids (of faqs.jsonl, when `faq_ids` is given),
    and a `kind` that agrees with them (a row labelled by hand is where a typo would quietly change a rate)."""
    rows = []
    for where, row in _json_lines(path):
        if not isinstance(row, dict) or not isinstance(row.get("query"), str) or not row["query"].strip():
            raise DataError(f"{where}: needs a JSON object with a non-empty \"query\"")
        kind, relevant, near = row.get("kind"), row.setdefault("relevant", []), row.get("near_miss", [])
        if not isinstance(relevant, list) or not isinstance(near, list):
            raise DataError(f"{where}: \"relevant\" and \"near_miss\" must be lists of FAQ ids")
        if kind is not None and kind not in KINDS:
            raise DataError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if kind == "paraphrase" and not relevant:
            raise DataError(f"{where}: a paraphrase names the FAQ it asks for in \"relevant\"")
        if kind == "near_miss" and (relevant or not near):
            raise DataError(f"{where}: a near_miss names the FAQ it only looks like in \"near_miss\", "
                            "and \"relevant\" is []")
        if kind == "no_match" and relevant:
            raise DataError(f"{where}: a no_match query has \"relevant\": [] (nothing answers it)")
        unknown = [str(f) for f in relevant + near if faq_ids is not None and str(f) not in faq_ids]
        if unknown:
            raise DataError(f"{where}: no FAQ {unknown[0]!r} in {path.parent / 'faqs.jsonl'}; check the id")
        rows.append(row)
    return rows


def read_judgements(path: Path, bench: Path, qids: set[str]) -> list[dict]:
    """A judgements file's lines ({"qid", "faq_id", "judgement"} and any notes), each checked against the bench."""
    if not path.is_file():
        raise DataError(f"{path} not found; --judgements takes a JSON-lines file of "
                        '{"qid": ..., "faq_id": ..., "judgement": "same|different|unclear"}')
    faq_ids = _faq_ids(bench) or set()
    out = []
    for where, row in _json_lines(path):
        if not isinstance(row, dict) or not {"qid", "faq_id", "judgement"} <= row.keys():
            raise DataError(f"{where}: needs qid, faq_id and judgement")
        if row["judgement"] not in JUDGEMENTS:
            raise DataError(f"{where}: judgement {row['judgement']!r} is not one of {', '.join(JUDGEMENTS)}")
        if row["qid"] not in qids:
            raise DataError(f"{where}: no query {row['qid']!r} in {bench / 'queries.jsonl'}; "
                            "were these judgements made for another bench?")
        if row["faq_id"] not in faq_ids:
            raise DataError(f"{where}: no FAQ {row['faq_id']!r} in {bench / 'faqs.jsonl'}; "
                            "were these judgements made for another bench?")
        out.append(row)
    return out


def apply_judgements(rows: list[dict], judgements: list[dict]) -> list[dict]:
    same: dict[str, set[str]] = {}
    for j in judgements:
        if j["judgement"] == "same":
            same.setdefault(j["qid"], set()).add(j["faq_id"])
    out = []
    for row in rows:
        faqs = same.get(row["qid"])
        if faqs:
            row = {**row, "relevant": sorted(set(row.get("relevant", ())) | faqs), "judged": sorted(faqs)}
            if row.get("kind") in ("no_match", "near_miss"):
                row["kind"] = "paraphrase"
            if row.get("near_miss"):
                row["near_miss"] = [f for f in row["near_miss"] if f not in faqs]
        out.append(row)
    return out


def ensure_bench_index(searcher: Searcher, bench: Path, progress: bool = True) -> str:
    """The bench's own alias, rebuilt only when faqs.jsonl, the embedding model or the dictionaries changed.

    Each embedding model other than the default gets an alias of its own, so comparing models
    (docs/benchmarks.md, "The first trained models: ablation on bq test") does not rebuild one index back and forth."""
    from ..kb.index import build, index_meta

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
