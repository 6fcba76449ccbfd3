"""`es-faq querylog bench DIR`: a faq-bench directory made of the live knowledge base and the queries its customers
asked, so that the decision can be calibrated on this knowledge base's own traffic (`es-faq calibrate --bench DIR
--split dev`; docs/training.md, "Calibrating for your own knowledge base").

`faqs.jsonl` is the live alias's FAQs, as `es-faq index load` reads them. `queries.jsonl` has one row per distinct
query (its normalised text) of the last `since`:
- labelled by the customers' feedback (split "dev"): `helpful` or `clicked` on an FAQ makes the query a paraphrase of
  that FAQ; `unhelpful` on the FAQs it was shown, with none taken, a near-miss of them (it looked like them and asked
  something else). Feedback that disagrees about one FAQ leaves the query to a person.
- the most frequent of the rest, for a person (split "to_label", no `kind`; the search's decision and the FAQs it
  showed as hints): set `kind` (paraphrase, near_miss or no_match), `relevant` or `near_miss`, and split "dev". Only a
  person can say that nothing in the knowledge base answers a query (no_match).
Nothing is overwritten: a directory that already has a queries.jsonl (perhaps with a person's labels) is refused."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from elasticsearch import Elasticsearch, helpers
from tqdm import tqdm

from ..config.indices import querylog_pattern
from ..config.settings import Settings
from ..errors import DataError, InvalidInput
from ..search.retrieve import FAQ_FIELDS, faq_record
from .doctor import live_index
from .querylog import FEEDBACK, NORMALIZED, QUERY, SEARCH, TIMESTAMP, searches
from .report import SINCE

TAKEN = ("helpful", "clicked")  # the customer took the FAQ as the answer; "unhelpful": they did not
TO_LABEL = "to_label"  # the split of the rows a person labels; calibration reads split "dev"
TO_LABEL_MAX = 10_000  # one terms aggregation's buckets (Elasticsearch's search.max_buckets is 65,536)
SHOWN = 3  # the FAQs a to-label row names as hints: what the customer saw first
LOG_FIELDS = [QUERY, NORMALIZED, FEEDBACK, "feedback_faq_id", "decision", "hits.faq_id", TIMESTAMP, "request_id"]


@dataclass
class _Query:
    """One distinct query (by normalised text) of the log: its latest wording and what its feedback said."""

    text: str = ""
    at: str = ""
    count: int = 0  # searches with feedback
    taken: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)

    def add(self, doc: dict) -> None:
        self.count += 1
        if doc.get(TIMESTAMP, "") >= self.at:
            self.text, self.at = doc.get(QUERY, ""), doc.get(TIMESTAMP, "")
        faq = doc.get("feedback_faq_id")
        if faq:
            (self.taken if doc.get(FEEDBACK) in TAKEN else self.refused).add(faq)


def _qid(normalized: str) -> str:
    return "log-" + hashlib.sha1(normalized.encode("utf-8")).hexdigest()[:12]


def _searches_with_feedback(client: Elasticsearch, index: str, since: str) -> Iterator[dict]:
    """Each search of the window that has feedback, its feedback merged in. Feedback on a search of the day before
    lives in the next day's index as a document of its own (the same id, no search fields): joined here by id."""
    window = {"range": {TIMESTAMP: {"gte": f"now-{since}"}}}
    has = {"exists": {"field": FEEDBACK}}
    lone: dict[str, dict] = {}
    for hit in helpers.scan(client, index=index, _source=LOG_FIELDS, allow_no_indices=True, ignore_unavailable=True,
                            query={"query": {"bool": {"filter": [has], "should": [
                                {"bool": {"filter": [SEARCH.dsl(), window]}},
                                {"bool": {"must_not": [SEARCH.dsl()],
                                          "filter": [{"range": {"feedback_at": {"gte": f"now-{since}"}}}]}}],
                                "minimum_should_match": 1}}}):
        doc = hit["_source"]
        if QUERY in doc:
            yield doc
        else:
            lone[hit["_id"]] = doc
    ids = sorted(lone)
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        for hit in helpers.scan(client, index=index, _source=LOG_FIELDS, allow_no_indices=True,
                                ignore_unavailable=True, query={"query": {"bool": {"filter": [
                                    SEARCH.dsl(), {"ids": {"values": chunk}}]}}}):
            if FEEDBACK not in hit["_source"]:  # a search that got its feedback the next day
                yield {**hit["_source"], **{k: v for k, v in lone[hit["_id"]].items() if k != TIMESTAMP}}


def _frequent(client: Elasticsearch, index: str, since: str, size: int) -> list[dict]:
    """The `size` most frequent normalised queries of the window, each with its latest search."""
    if not size:
        return []
    body = client.search(index=index, size=0, allow_no_indices=True, ignore_unavailable=True, query=searches(since),
                         aggs={"by_query": {"terms": {"field": NORMALIZED, "size": size}, "aggs": {"latest": {
                             "top_hits": {"size": 1, "sort": [{TIMESTAMP: "desc"}], "_source": LOG_FIELDS}}}}}).body
    buckets = ((body.get("aggregations") or {}).get("by_query") or {}).get("buckets", [])
    return [{"normalized": b["key"], "count": b["doc_count"], "latest": b["latest"]["hits"]["hits"][0]["_source"]}
            for b in buckets]


def _write_lines(path: Path, rows: Iterable[dict]) -> int:
    """Write JSON lines to `path` through a temporary file, so a failure leaves no half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def log_bench(client: Elasticsearch, settings: Settings, out: Path, since: str = "30d", to_label: int = 500,
              alias: str | None = None, progress: bool = True) -> dict:
    """Write `out`/faqs.jsonl and `out`/queries.jsonl (module docstring); returns what was written and what next."""
    if not SINCE.fullmatch(since):
        raise InvalidInput(f"since={since!r}: give a number and a unit s, m, h, d or w, like 30d")
    if not 0 <= to_label <= TO_LABEL_MAX:
        raise InvalidInput(f"to_label must be from 0 to {TO_LABEL_MAX}")
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

    queries: dict[str, _Query] = {}
    for doc in _searches_with_feedback(client, log, since):
        queries.setdefault(doc.get(NORMALIZED) or doc[QUERY], _Query()).add(doc)
    labelled: list[dict] = []
    disagree = gone = 0
    for normalized, query in sorted(queries.items()):
        known = {f for f in query.taken | query.refused if f in faqs}
        gone += len(query.taken | query.refused) - len(known)
        taken, refused = query.taken & known, query.refused & known
        if taken & refused:
            disagree += 1
            continue
        row = {"qid": _qid(normalized), "query": query.text, "split": "dev", "feedback": query.count,
               "label": "feedback"}
        if taken:
            labelled.append({**row, "kind": "paraphrase", "relevant": sorted(taken)})
        elif refused:
            labelled.append({**row, "kind": "near_miss", "relevant": [], "near_miss": sorted(refused)})
    done = {row["qid"] for row in labelled}
    unlabelled: list[dict] = []
    for bucket in _frequent(client, log, since, to_label + len(done)):
        qid = _qid(bucket["normalized"])
        if qid in done or len(unlabelled) == to_label:
            continue
        latest = bucket["latest"]
        unlabelled.append({"qid": qid, "query": latest.get(QUERY, bucket["normalized"]), "split": TO_LABEL,
                           "relevant": [], "searches": bucket["count"], "decision": latest.get("decision"),
                           "shown": [h["faq_id"] for h in (latest.get("hits") or [])[:SHOWN]]})

    out.mkdir(parents=True, exist_ok=True)
    _write_lines(out / "faqs.jsonl", (faqs[k] for k in sorted(faqs)))
    _write_lines(out / "queries.jsonl", labelled + unlabelled)
    from ..evaluation.calibrate import fewest_queries
    from ..search.decide import DEFAULT_CONFIDENCE, NEAR_MISS_MAX, NO_MATCH_MAX

    kinds = {kind: sum(r["kind"] == kind for r in labelled) for kind in ("paraphrase", "near_miss")}
    return {"directory": str(out), "alias": alias, "since": since, "faqs": len(faqs), "labelled": kinds,
            "to_label": len(unlabelled), "feedback_disagrees": disagree, "feedback_on_missing_faqs": gone,
            "needed_for_default_bounds": {"near_miss": fewest_queries(NEAR_MISS_MAX, DEFAULT_CONFIDENCE),
                                          "no_match": fewest_queries(NO_MATCH_MAX, DEFAULT_CONFIDENCE)},
            "next": f"label the rows of {out / 'queries.jsonl'} whose split is {TO_LABEL!r} (kind, relevant or "
                    "near_miss, split \"dev\"), then: es-faq calibrate --bench " + str(out) + " --split dev"}
