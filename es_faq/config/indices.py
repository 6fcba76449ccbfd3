"""The indices es-faq keeps beside a knowledge base's, by name: the query log's daily indices (the rest of
its schema is es_faq/kb/querylog.py's) and the dictionary previews' temporary copies. Named here, at the
bottom of the package, because Settings refuses an index alias that would clash with them (`reserved`)."""

from __future__ import annotations

import re
from datetime import date, datetime

MAX_ID_BYTES = 512  # Elasticsearch's limit on a document _id, in UTF-8 bytes

# Temporary copies of an index made by a dictionary preview (es_faq/evaluation/preview.py).
PREVIEW_INDEX_PREFIX = "es-faq-preview-"
PREVIEW_INDEX_PATTERN = PREVIEW_INDEX_PREFIX + "*"
DAY_SUFFIX = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})")


def querylog_pattern(prefix: str) -> str:
    """Every daily index of the query log under `prefix`, as a search or template pattern."""
    return f"{prefix}-*"


def querylog_index(prefix: str, when: datetime) -> str:
    """The query log's daily index of `when`'s day, `<prefix>-YYYY.MM.DD`."""
    return f"{prefix}-{when:%Y.%m.%d}"


def querylog_day(prefix: str, name: str) -> date | None:
    """The day of a daily index `<prefix>-YYYY.MM.DD`; None for any other name (another prefix's index)."""
    match = DAY_SUFFIX.fullmatch(name[len(prefix):]) if name.startswith(prefix) else None
    if not match:
        return None
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        return None
