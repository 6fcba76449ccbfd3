"""The query log's daily indices `<query_log_prefix>-YYYY.MM.DD`: the feedback values a document may
carry, and retention (`prune`), which the API's writer (es_faq/api/querylog.py) and `es-faq querylog
prune` both apply."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from elasticsearch import Elasticsearch

from ..config import Settings

FEEDBACK = ("helpful", "unhelpful", "clicked")
DAY_SUFFIX = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _index_day(prefix: str, name: str) -> date | None:
    """The day of a daily index `<prefix>-YYYY.MM.DD`; None for any other name (another prefix's index)."""
    match = DAY_SUFFIX.fullmatch(name[len(prefix):]) if name.startswith(prefix) else None
    if not match:
        return None
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        return None


def prune(client: Elasticsearch, settings: Settings, dry_run: bool = False, today: date | None = None) -> dict:
    """Delete the daily indices whose day is query_log_retention_days or more before today (UTC)."""
    days = settings.query_log_retention_days
    prefix = settings.query_log_prefix
    today = today or _now().date()
    report: dict = {"prefix": prefix, "retention_days": days, "dry_run": dry_run, "deleted": [], "kept": 0}
    rows = client.cat.indices(index=f"{prefix}-*", format="json", h="index", expand_wildcards="open,closed").body
    assert isinstance(rows, list)  # format=json: parsed rows, not text
    dated = sorted((day, row["index"]) for row in rows if (day := _index_day(prefix, row["index"])))
    doomed = [name for day, name in dated if days and day <= today - timedelta(days=days)]
    report["kept"] = len(dated) - len(doomed)
    # Named one by one: wildcard deletes are refused (action.destructive_requires_name).
    for start in range(0, len(doomed), 50):
        names = doomed[start:start + 50]
        if not dry_run:
            client.options(ignore_status=404).indices.delete(index=",".join(names))
        report["deleted"] += names
    return report
