"""The OpenAPI 3.1 document: a data file (openapi.json) with the running configuration's limits."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

from .. import __version__
from ..config.settings import Settings

SPEC_FILE = Path(__file__).with_name("openapi.json")


@lru_cache(maxsize=1)
def _base() -> dict:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def spec(settings: Settings) -> dict:
    """openapi.json with the limits that Settings decides, so the document never disagrees with the server."""
    doc = copy.deepcopy(_base())
    doc["info"]["version"] = __version__
    fields = doc["components"]["schemas"]["SearchRequest"]["properties"]
    fields["query"]["maxLength"] = settings.query_max_chars
    fields["k"].update(maximum=settings.search_max_k, default=settings.search_k)
    fields["mode"]["default"] = settings.search_mode
    return doc

