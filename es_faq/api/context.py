"""The app's one Searcher: create_app stores it, every blueprint reads it from here."""

from __future__ import annotations

from flask import current_app

from ..search.pipeline import Searcher

SEARCHER = "es_faq.searcher"  # its key in app.extensions


def current_searcher() -> Searcher:
    """The Searcher of the app handling this request."""
    return current_app.extensions[SEARCHER]
