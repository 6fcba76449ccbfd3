"""What a dictionary change would do, before it is made: replay queries through a shadow analyzer.

The change is applied to a copy of the stored dictionaries held in memory only (nothing is written
to `<dict_index>`). Synonyms act on the query alone; a user word, rewrite or filler entry also changes
how the FAQs are analysed, so for those the searched index is copied into a temporary
`es-faq-preview-*` index re-analysed with the shadow dictionaries (vectors re-used unless the
embedded text changed), searched, and deleted. The live alias and its indices are only read.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import replace
from pathlib import Path

from elasticsearch import Elasticsearch, helpers

from ..config.indices import PREVIEW_INDEX_PATTERN, PREVIEW_INDEX_PREFIX, querylog_pattern
from ..errors import InvalidInput
from ..kb.querylog import QUERY, TIMESTAMP
from ..search.analyze import Analyzer
from ..search.dictionary import KINDS, Dictionary, entry_id, validate
from ..search.pipeline import Searcher

ACTIONS = ("add", "remove")
DOCUMENT_KINDS = ("word", "rewrite", "filler")  # applied to the FAQs at index time too
SHADOW_PREFIX = PREVIEW_INDEX_PREFIX
# A preview replays MAX_QUERIES queries at most, twice: minutes. A temporary index of another host
# older than this is a killed preview's; on this host, a dead owner's pid says so at once.
STALE_PREVIEW_S = 3600.0
MAX_QUERIES = 5000
UNCOMPARED = ("p50_ms", "p95_ms", "queries", "paraphrases")  # the same on both sides, or noise


def check_change(action: str, kind: str) -> None:
    """InvalidInput unless `action` and `kind` name a change (what the entry says is checked against the
    dictionary, by shadow_dictionary)."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; use add or remove")
    if kind not in KINDS:
        raise InvalidInput(f"unknown dictionary kind {kind!r}; use one of {', '.join(KINDS)}")


def shadow_dictionary(current: Dictionary, action: str, kind: str, terms: list[str]) -> tuple[Dictionary, list[str]]:
    """A copy of `current` with the change applied, and the change's cleaned terms; `current` is untouched."""
    check_change(action, kind)
    shadow = deepcopy(current)
    existing = {entry_id(k, t) for k, t in current.entries()}
    if action == "add":
        terms = validate(kind, terms, current)
        if entry_id(kind, terms) in existing:
            raise InvalidInput(f"{kind} {' '.join(terms)!r} is already in the dictionary: adding it changes nothing")
        shadow.put(kind, terms)
    else:
        terms = [t.strip() for t in terms]
        if entry_id(kind, terms) not in existing:
            raise InvalidInput(f"no {kind} entry {' '.join(terms)!r} in the dictionary")
        shadow.drop(kind, terms)
    # A version no stored dictionary has, so no cache mistakes the shadow for the live one.
    return replace(shadow, version=-1 - current.version), terms


def shadow_index(searcher: Searcher, shadow: Analyzer, source: str, batch: int = 256) -> str:
    """A temporary copy of index `source` analysed with `shadow`: tokens re-segmented, vectors re-used
    where the embedded text is unchanged. The caller deletes it (`shadow_copy` does)."""
    from ..kb.index import faq_body

    client, live = searcher.client, searcher.analyzer
    drop_stale_previews(client, searcher.settings.vocab_index, source)
    name = f"{SHADOW_PREFIX}{uuid.uuid4().hex[:12]}"
    body = faq_body(searcher.settings, searcher.embedder.dims, {
        "state": "preview", "source": source, "host": socket.gethostname(), "pid": os.getpid(),
        "created_s": time.time()})
    client.indices.create(index=name, **body)
    try:
        docs: list[dict] = []
        for hit in helpers.scan(client, index=source, query={"query": {"match_all": {}}}, preserve_order=False,
                                source_exclude_vectors=False):
            docs.append(hit)
            if len(docs) >= batch:
                _copy(client, name, docs, live, shadow, searcher)
                docs = []
        if docs:
            _copy(client, name, docs, live, shadow, searcher)
        client.indices.refresh(index=name)
    except BaseException:
        client.options(ignore_status=404).indices.delete(index=name)
        raise
    return name


def drop_stale_previews(client: Elasticsearch, vocab_index: str, source: str | None) -> list[str]:
    """Delete the temporary indices that killed previews of `source` (None: of any source) left (a
    process killed mid-preview never reaches its `finally`): their process is gone from this host, or
    they are older than STALE_PREVIEW_S. Run before each new copy, and when a preview job is found dead
    (es_faq/api/jobs.py); a new copy leaves other sources' previews to theirs."""
    mappings = client.options(ignore_status=404).indices.get_mapping(index=PREVIEW_INDEX_PATTERN,
                                                                     expand_wildcards="all").body
    stale = []
    for name, body in mappings.items():
        meta = ((body.get("mappings") or {}).get("_meta") or {}).get("es_faq") or {}
        if not name.startswith(SHADOW_PREFIX) or source not in (None, meta.get("source")):
            continue
        dead = meta.get("host") == socket.gethostname() and not _alive(meta.get("pid"))
        if dead or time.time() - float(meta.get("created_s") or 0) > STALE_PREVIEW_S:
            stale.append(name)
    for name in stale:
        client.options(ignore_status=404).indices.delete(index=name)
        client.options(ignore_status=404).delete(index=vocab_index, id=name)
    return stale


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _copy(client: Elasticsearch, name: str, hits: list[dict], live: Analyzer, shadow: Analyzer,
          searcher: Searcher) -> None:
    questions = [q for hit in hits for q in hit["_source"].get("questions", [])]
    redo = []
    for question in questions:
        before, after = live.analyze(question["text"]), shadow.analyze(question["text"])
        question["tokens"] = " ".join(after.tokens)
        if after.text != before.text or "vector" not in question:
            redo.append((question, after.text or after.normalized))
    if redo:
        from ..kb.index import vector_fields
        from ..kb.vectors import VectorCache

        vectors = VectorCache(client, searcher.settings, searcher.embedder).encode([text for _, text in redo])
        for (question, _), vector in zip(redo, vector_fields(vectors), strict=True):
            question["vector"] = vector
    helpers.bulk(client, ({"_index": name, "_id": hit["_id"], "_source": hit["_source"]} for hit in hits),
                 refresh=False)


@contextmanager
def shadow_copy(searcher: Searcher, shadow: Analyzer, kind: str, source: str) -> Iterator[str]:
    """The index the shadow searches: `source` itself for a query-side change, else a temporary copy."""
    if kind not in DOCUMENT_KINDS:
        yield source
        return
    name = shadow_index(searcher, shadow, source)
    try:
        yield name
    finally:
        client = searcher.client.options(ignore_status=404)
        client.indices.delete(index=name)
        client.delete(index=searcher.settings.vocab_index, id=name, refresh=True)  # the vocabulary a search made


def logged_queries(client: Elasticsearch, prefix: str, last: int) -> list[str]:
    """The distinct queries of the newest `last` searches in the query log, newest first."""
    # Searches whose query is indexed: one over the mapping's ignore_above (1024 characters) is left out.
    response = client.search(index=querylog_pattern(prefix), size=last, sort=[{TIMESTAMP: {"order": "desc"}}],
                             source_includes=[QUERY], query={"exists": {"field": QUERY}},
                             ignore_unavailable=True, allow_no_indices=True)
    return list(dict.fromkeys(h["_source"][QUERY] for h in response["hits"]["hits"] if h["_source"].get(QUERY)))


def _side(searcher: Searcher, query: str, row: dict, corrector_index: str) -> dict:
    analysis = searcher.analyzer.analyze(query, expand=True, corrector=searcher.corrector(corrector_index))
    return {"top": row["top"], "decision": row["action"], "rank": row["rank"], "tokens": analysis.tokens,
            "expansions": analysis.expansions}


def _changes(before: Searcher, after: Searcher, queries: list[dict], rows_before: list[dict],
             rows_after: list[dict], indices: tuple[str, str]) -> list[dict]:
    changed = []
    for query, old, new in zip(queries, rows_before, rows_after, strict=True):
        if (old["top"], old["action"]) != (new["top"], new["action"]):
            changed.append({"query": query["query"], "relevant": query.get("relevant", []),
                            "before": _side(before, query["query"], old, indices[0]),
                            "after": _side(after, query["query"], new, indices[1])})
    return changed


def _delta(before, after):
    """after - before for every number the two summaries share, nested as they are."""
    if isinstance(before, dict) and isinstance(after, dict):
        pairs = ((k, _delta(before[k], after[k])) for k in before if k in after)
        return {k: d for k, d in pairs if d is not None}
    if isinstance(before, int | float) and isinstance(after, int | float) and not isinstance(before, bool):
        return round(after - before, 4)
    return None


def preview(searcher: Searcher, action: str, kind: str, terms: list[str], *, last: int = 200,
            bench: Path | None = None, split: str = "dev", limit: int | None = None, mode: str | None = None,
            index: str | None = None) -> dict:
    """Replay the newest `last` logged queries (or a bench split's) before and after the change.

    Returns the change, which queries' leader or decision would move (before -> after), and for a
    bench the metrics of es_faq/evaluation/evaluate.py on both sides and their difference."""
    from .bench import ensure_bench_index, load_queries
    from .calibrate import collect
    from .evaluate import evaluate

    if not 1 <= last <= MAX_QUERIES:
        raise InvalidInput(f"last must be from 1 to {MAX_QUERIES}")
    settings = searcher.settings
    mode = mode or settings.search_mode
    searcher.analyzer.refresh()
    current = searcher.analyzer.dictionary
    dictionary, terms = shadow_dictionary(current, action, kind, terms)
    shadow = Analyzer(settings, dictionary=dictionary)
    after = Searcher(settings, searcher.client, searcher.embedder, shadow, searcher.reranker)
    out: dict = {"change": {"action": action, "kind": kind, "terms": terms},
                 "dictionary_version": current.version, "mode": mode, "committed": False}
    if bench is not None:
        queries = load_queries(bench, split, limit)
        source = ensure_bench_index(searcher, bench, progress=False)
        out["source"] = {"bench": bench.resolve().name, "split": split, "index": source}
    else:
        source = index or settings.index_alias
        texts = logged_queries(searcher.client, settings.query_log_prefix, last)
        if not texts:
            raise InvalidInput(f"the query log ({querylog_pattern(settings.query_log_prefix)}) holds no searches to "
                               "replay; replay a bench's queries instead (--bench DIR)")
        queries = [{"query": q, "relevant": []} for q in texts]
        out["source"] = {"query_log": settings.query_log_prefix, "last": last, "index": source}
    with shadow_copy(searcher, shadow, kind, source) as shadow_source:
        out["source"]["shadow_index"] = shadow_source if shadow_source != source else None
        if bench is not None:
            summary_before, rows_before = evaluate(searcher, bench, split, mode, source, queries)
            summary_after, rows_after = evaluate(after, bench, split, mode, shadow_source, queries)
            metrics = {k: v for k, v in summary_before.items() if k not in UNCOMPARED}
            metrics_after = {k: v for k, v in summary_after.items() if k not in UNCOMPARED}
            out["metrics"] = {"before": metrics, "after": metrics_after, "delta": _delta(metrics, metrics_after)}
        else:
            rows_before = collect(searcher, source, queries, mode, progress=False)
            rows_after = collect(after, shadow_source, queries, mode, progress=False)
        out["queries"] = len(queries)
        out["changed"] = _changes(searcher, after, queries, rows_before, rows_after, (source, shadow_source))
    return out


def as_text(report: dict) -> str:
    """A preview report for a terminal: the change, the queries that would move, the metrics' deltas."""
    change = report["change"]
    lines = [f"preview: {change['action']} {change['kind']} {' '.join(change['terms'])} "
             f"(dictionary version {report['dictionary_version']}, nothing committed)",
             f"{report['queries']} queries replayed, {len(report['changed'])} would change:"]
    for row in report["changed"]:
        before, after = row["before"], row["after"]
        lines.append(f"  {row['query']}\n    top {before['top']} -> {after['top']}; decision {before['decision']} -> "
                     f"{after['decision']}; tokens {' '.join(before['tokens'])} -> {' '.join(after['tokens'])}")
    for name, value in (report.get("metrics", {}).get("delta") or {}).items():
        if not isinstance(value, dict) and name in report["metrics"]["after"]:
            lines.append(f"  {name}: {report['metrics']['before'][name]} -> {report['metrics']['after'][name]} "
                         f"({value:+g})")
    return "\n".join(lines)
