"""The query log's schema, in one place: the index template (mappings/querylog.json) of the daily indices
`<query_log_prefix>-YYYY.MM.DD` (named in es_faq/config/indices.py, where Settings checks an alias
against them), the documents a search and its feedback write, the conditions its readers filter on (a
search, no match, unhelpful) as query DSL and as Kibana KQL from one definition, and retention (`prune`).
The API's writer (es_faq/api/querylog.py), `es-faq report`, `doctor`, `preview`, `kibana export` and
`querylog prune` all take them from here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from elasticsearch import Elasticsearch

from ..config.indices import querylog_day, querylog_pattern
from ..config.settings import Settings
from .index import MAPPINGS_DIR

if TYPE_CHECKING:  # annotations only: the search pipeline (and its models) loads only where a search is logged
    from ..search.pipeline import SearchResult

TEMPLATE_FILE = MAPPINGS_DIR / "querylog.json"
FEEDBACK_VALUES = ("helpful", "unhelpful", "clicked")  # what POST /v1/feedback takes

# The fields the readers name; the mapping is strict, and tests/test_querylog_schema.py checks each is in it.
TIMESTAMP = "@timestamp"
QUERY = "query"
NORMALIZED = "normalized"
DECISION = "decision"
HIT_COUNT = "hit_count"
HIT_FAQ_ID = "hits.faq_id"
LATENCY_MS = "latency_ms"
FEEDBACK = "feedback"
FEEDBACK_FAQ_ID = "feedback_faq_id"


# --- the template -----------------------------------------------------------------------------------

def template_body() -> dict:
    """The settings and strict mappings every daily index gets (mappings/querylog.json)."""
    return json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))


def put_template(client: Elasticsearch, prefix: str) -> None:
    """PUT the composable index template `<prefix>` for `<prefix>-*`, so no daily index gets dynamic mappings."""
    client.indices.put_index_template(name=prefix, index_patterns=[querylog_pattern(prefix)],
                                      template=template_body(), meta={"es_faq": "query log"})


# --- the documents ----------------------------------------------------------------------------------

def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def search_document(request_id: str, result: SearchResult, channel_id: str | None, user_id: str | None,
                    when: datetime) -> dict:
    """A search's fields; its feedback's fields (feedback_document) merge into the same document."""
    return {TIMESTAMP: _stamp(when), "request_id": request_id,
            QUERY: result.query, NORMALIZED: result.analysis.normalized,
            "rewrites": [" => ".join(pair) for pair in result.analysis.rewrites],
            DECISION: result.decision.action,
            "hits": [{"faq_id": h.faq_id, "score": h.scores.get("rerank", h.score)} for h in result.hits],
            HIT_COUNT: len(result.hits), LATENCY_MS: result.timings_ms.get("total"),
            "channel_id": channel_id, "user_id": user_id, "mode": result.mode}


def feedback_document(request_id: str, faq_id: str, feedback: str, when: datetime) -> dict:
    return {"request_id": request_id, FEEDBACK: feedback, FEEDBACK_FAQ_ID: faq_id,
            "feedback_at": _stamp(when)}


# --- the conditions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """The documents where any of `matches` holds: (field, value), or (field, None) for any value at all.
    `dsl()` is what Elasticsearch runs and `kql()` what a Kibana panel filters on, both read from here."""

    matches: tuple[tuple[str, str | int | None], ...]

    def __or__(self, other: Condition) -> Condition:
        return Condition(self.matches + other.matches)

    def dsl(self) -> dict:
        clauses = [{"exists": {"field": f}} if v is None else {"term": {f: v}} for f, v in self.matches]
        return clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses, "minimum_should_match": 1}}

    def kql(self) -> str:
        return " or ".join(f"{f} : {_kql_value(v)}" for f, v in self.matches)


def _kql_value(value: str | int | None) -> str:
    if value is None:
        return "*"
    if isinstance(value, str):  # a quoted KQL value: only \ and " are escaped
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


# A search, not a lone feedback document (feedback on a search of the day before sets no hit_count).
SEARCH = Condition(((HIT_COUNT, None),))
# The decide stage's no_match, or a search that found nothing at all.
NO_MATCH = Condition(((DECISION, "no_match"), (HIT_COUNT, 0)))
UNHELPFUL = Condition(((FEEDBACK, "unhelpful"),))
FAILING = NO_MATCH | UNHELPFUL  # what `es-faq report` clusters


def searches(duration: str | None = None) -> dict:
    """The search documents, of the last `duration` (7d, 24h: checked by the caller) when one is given."""
    filters = [SEARCH.dsl()]
    if duration:
        filters.append({"range": {TIMESTAMP: {"gte": f"now-{duration}"}}})
    return {"bool": {"filter": filters}}


# --- retention --------------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(timezone.utc)


def prune(client: Elasticsearch, settings: Settings, dry_run: bool = False, today: date | None = None) -> dict:
    """Delete the daily indices whose day is query_log_retention_days or more before today (UTC)."""
    days = settings.query_log_retention_days
    prefix = settings.query_log_prefix
    today = today or _now().date()
    report: dict = {"prefix": prefix, "retention_days": days, "dry_run": dry_run, "deleted": [], "kept": 0}
    rows = client.cat.indices(index=querylog_pattern(prefix), format="json", h="index",
                              expand_wildcards="open,closed").body
    assert isinstance(rows, list)  # format=json: parsed rows, not text
    dated = sorted((day, row["index"]) for row in rows if (day := querylog_day(prefix, row["index"])))
    doomed = [name for day, name in dated if days and day <= today - timedelta(days=days)]
    report["kept"] = len(dated) - len(doomed)
    # Named one by one: wildcard deletes are refused (action.destructive_requires_name).
    for start in range(0, len(doomed), 50):
        names = doomed[start:start + 50]
        if not dry_run:
            client.options(ignore_status=404).indices.delete(index=",".join(names))
        report["deleted"] += names
    return report
