"""`es-faq querylog bench DIR`: a faq-bench directory made of the live knowledge base and a random sample of the
queries its customers asked, for a person to label, so that the decision can be calibrated on this knowledge base's
own traffic (`es-faq calibrate --bench DIR --split dev`; docs/training.md, "Calibrating for your own knowledge base").

`faqs.jsonl` is the live alias's FAQs, as `es-faq index load` reads them. `queries.jsonl` holds a seeded random
sample of the searches of the last `since` (each distinct query, by its normalised text, once), every row in split
"to_label" with what the search did as hints: its decision, the FAQs it showed first, how often the query was asked,
and the customer's feedback where there was some. A person sets `kind` (paraphrase, near_miss or no_match),
`relevant` or `near_miss`, and split "dev"; `es-faq calibrate` then reads the dev rows.

The sample is random on purpose: labels read off feedback alone describe only the searches that showed something
(a handed-over search gets no feedback), and a calibration fitted on them is far stricter than the traffic needs
(docs/benchmarks.md, "Calibrating on the query log"). Nothing is overwritten: a directory that already has a
queries.jsonl (perhaps with a person's labels) is refused."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from elasticsearch import Elasticsearch, helpers
from tqdm import tqdm

from ..config.indices import querylog_pattern
from ..config.settings import Settings
from ..errors import DataError, InvalidInput
from ..search.retrieve import FAQ_FIELDS, faq_record
from .doctor import live_index
from .querylog import (
    DECISION,
    FEEDBACK,
    FEEDBACK_FAQ_ID,
    HIT_FAQ_ID,
    NORMALIZED,
    QUERY,
    SEARCH,
    TIMESTAMP,
    searches,
)
from .report import check_since

TO_LABEL = "to_label"  # the split of the rows a person labels; calibration reads split "dev"
SAMPLE_MAX = 10_000  # searches one request samples (index.max_result_window)
SHOWN = 3  # the FAQs a row names as hints: what the customer saw first
LOG_FIELDS = [QUERY, NORMALIZED, FEEDBACK, FEEDBACK_FAQ_ID, DECISION, HIT_FAQ_ID, TIMESTAMP]


def qid(normalized: str) -> str:
    """A row's id: the same query gets the same id in every sample."""
    return "log-" + hashlib.sha1(normalized.encode("utf-8")).hexdigest()[:12]


def _sample(client: Elasticsearch, index: str, since: str, size: int, seed: int) -> list[dict]:
    """`size` searches of the window drawn at random (seeded), as (id, document)."""
    body = client.search(index=index, size=size, allow_no_indices=True, ignore_unavailable=True,
                         source_includes=LOG_FIELDS, query={"function_score": {
                             "query": searches(since), "boost_mode": "replace",
                             "random_score": {"seed": seed, "field": "_seq_no"}}}).body
    return [{"_id": hit["_id"], **hit["_source"]} for hit in body["hits"]["hits"]]


def _late_feedback(client: Elasticsearch, index: str, ids: list[str]) -> dict[str, dict]:
    """Feedback on a search of the day before is a document of its own in the next day's index (the same id, no
    search fields): found here by id."""
    if not ids:
        return {}
    body = client.search(index=index, size=len(ids), allow_no_indices=True, ignore_unavailable=True,
                         source_includes=[FEEDBACK, FEEDBACK_FAQ_ID], query={"bool": {
                             "filter": [{"ids": {"values": ids}}, {"exists": {"field": FEEDBACK}}],
                             "must_not": [SEARCH.dsl()]}}).body
    return {hit["_id"]: hit["_source"] for hit in body["hits"]["hits"]}


def _asked(client: Elasticsearch, index: str, since: str, normalized: list[str]) -> dict[str, int]:
    """How many searches of the window asked each of these normalised queries."""
    if not normalized:
        return {}
    body = client.search(index=index, size=0, allow_no_indices=True, ignore_unavailable=True, query=searches(since),
                         aggs={"asked": {"terms": {"field": NORMALIZED, "include": normalized,
                                                   "size": len(normalized)}}}).body
    return {b["key"]: b["doc_count"] for b in body["aggregations"]["asked"]["buckets"]}


def _write_lines(path: Path, rows: Iterable[dict]) -> None:
    """Write JSON lines to `path` through a temporary file, so a failure leaves no half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def log_bench(client: Elasticsearch, settings: Settings, out: Path, since: str = "30d", sample: int = 1000,
              seed: int = 0, alias: str | None = None, progress: bool = True) -> dict:
    """Write `out`/faqs.jsonl and `out`/queries.jsonl (module docstring); returns what was written and what next."""
    check_since(since)
    if not 1 <= sample <= SAMPLE_MAX:
        raise InvalidInput(f"sample must be from 1 to {SAMPLE_MAX}")
    if (out / "queries.jsonl").exists():
        raise DataError(f"{out / 'queries.jsonl'} exists and may hold labels a person made; give a new directory "
                        "(or move that file away first)")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a directory for the bench")
    alias = alias or settings.index_alias
    index = live_index(client, alias)
    log = querylog_pattern(settings.query_log_prefix)

    faqs: dict[str, dict] = {}
    rows = helpers.scan(client, index=index, _source=FAQ_FIELDS, query={"query": {"match_all": {}}}, size=500)
    for hit in tqdm(rows, desc="read FAQs", unit="faq", disable=not progress):
        record = {k: v for k, v in faq_record(hit["_source"]).items() if v is not None}  # no updated_at: none
        faqs[record["id"]] = record

    drawn = _sample(client, log, since, sample, seed)
    late = _late_feedback(client, log, [d["_id"] for d in drawn if FEEDBACK not in d])
    picked: dict[str, dict] = {}
    for doc in drawn:  # one row a query: its first search drawn, or the first drawn that got feedback
        key, doc = doc.get(NORMALIZED) or doc.get(QUERY, ""), {**doc, **late.get(doc["_id"], {})}
        if key not in picked or (FEEDBACK in doc and FEEDBACK not in picked[key]):
            picked[key] = doc
    asked = _asked(client, log, since, sorted(picked))
    queries = []
    for normalized, doc in picked.items():
        row = {"qid": qid(normalized), "query": doc.get(QUERY, normalized), "split": TO_LABEL, "relevant": [],
               "asked": asked.get(normalized, 1), "decision": doc.get(DECISION),
               "shown": [h["faq_id"] for h in (doc.get("hits") or [])[:SHOWN]]}
        if doc.get(FEEDBACK):
            row.update({FEEDBACK: doc[FEEDBACK], FEEDBACK_FAQ_ID: doc.get(FEEDBACK_FAQ_ID)})
        queries.append(row)

    out.mkdir(parents=True, exist_ok=True)
    _write_lines(out / "faqs.jsonl", (faqs[k] for k in sorted(faqs)))
    _write_lines(out / "queries.jsonl", queries)
    from ..search.decide import DEFAULT_CONFIDENCE, NEAR_MISS_MAX, NO_MATCH_MAX, fewest_queries

    decisions = {action: sum(r["decision"] == action for r in queries) for action in ("answer", "suggest", "no_match")}
    return {"directory": str(out), "alias": alias, "since": since, "seed": seed, "faqs": len(faqs),
            "searches_drawn": len(drawn), "queries": len(queries), "by_decision": decisions,
            "with_feedback": sum(FEEDBACK in r for r in queries),
            "needed_for_default_bounds": {"near_miss": fewest_queries(NEAR_MISS_MAX, DEFAULT_CONFIDENCE),
                                          "no_match": fewest_queries(NO_MATCH_MAX, DEFAULT_CONFIDENCE)},
            "next": f"label the rows of {out / 'queries.jsonl'}: kind (paraphrase, near_miss or no_match), relevant "
                    "or near_miss, and split \"dev\"; then es-faq calibrate --bench " + str(out) + " --split dev"}
