"""GET /debug: one self-contained page that runs a debug search and shows every stage side by side.

The page (debug.html beside this file: HTML, CSS and vanilla JS, nothing fetched from elsewhere) calls
POST /v1/search with "debug": true from the browser; this module only serves it."""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response

from .context import current_searcher

PAGE = Path(__file__).with_name("debug.html")
ALIAS_MARK = "__ES_FAQ_ALIAS__"
# Inline script and style only, requests to this origin only: a page that loads nothing from outside.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

debug_page = Blueprint("debug_page", __name__)


@lru_cache(maxsize=1)
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@debug_page.get("/debug")
def debug():
    """The page, told the alias it searches (for the `GET <alias>/_search` it offers to copy)."""
    alias = current_searcher().settings.index_alias
    body = _page().replace(ALIAS_MARK, html.escape(alias, quote=True))
    response = Response(body, content_type="text/html; charset=utf-8")
    response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})
    return response
