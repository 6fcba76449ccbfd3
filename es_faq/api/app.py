"""Flask application factory: the /v1 API and the operations endpoints, JSON everywhere."""

from __future__ import annotations

import atexit
import json
import logging
import re
import time
import uuid

from elasticsearch import ApiError, TransportError
from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

from ..config.load import load_settings
from ..config.settings import Settings
from ..engine.client import make_client
from ..search import differ
from ..search.pipeline import Searcher
from . import errors, metrics
from .admin import admin
from .context import SEARCHER
from .debug_page import debug_page
from .ops import ops
from .querylog import QueryLog
from .v1 import REQUEST_ID, v1

log = logging.getLogger("es_faq.api")

_ROUTE_ARG = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


class JsonProvider(DefaultJSONProvider):
    """UTF-8 JSON in the order the view built it; \\u escapes only if a string cannot be UTF-8."""

    ensure_ascii = False
    sort_keys = False

    def dumps(self, obj, **kwargs) -> str:
        text = super().dumps(obj, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate slipped through: still answer with valid JSON
            text = json.dumps(obj, ensure_ascii=True, default=self.default)
        return text


def _begin() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    # The route as the OpenAPI document writes it ("/v1/faqs/{faq_id}"): one label per endpoint.
    g.endpoint = _ROUTE_ARG.sub(r"{\1}", request.url_rule.rule) if request.url_rule else "unmatched"


def _finish(response):
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    request_id = g.get("request_id") or uuid.uuid4().hex
    endpoint = g.get("endpoint", "unmatched")
    response.headers["X-Request-ID"] = request_id
    metrics.observe_request(endpoint, request.method, response.status_code, seconds)
    status = response.status_code
    level = logging.WARNING if status == 503 else logging.ERROR if status >= 500 else logging.INFO
    fields = {"request_id": request_id, "method": request.method, "path": request.path[:512], "endpoint": endpoint,
              "status": status, "latency_ms": round(seconds * 1000, 2)}
    if g.get("error_code"):
        fields["error_code"] = g.error_code
    if g.get("partial"):
        fields["partial"] = True  # a search answered with some shards' hits missing
    log.log(level, "request", extra=fields)
    return response


def _build_corrector(searcher: Searcher) -> None:
    """The served index's typo corrector, built from its vocabulary now rather than in a worker's first search
    (100-250 ms on the benches). An engine that does not answer leaves it to a later search, as it would be."""
    try:
        searcher.corrector(searcher.settings.index_alias)
    except (TransportError, ApiError) as exc:
        log.warning("typo corrector not built at start (built at a later search)", extra={"error": str(exc)[:200]})


def create_app(settings: Settings | None = None, searcher: Searcher | None = None) -> Flask:
    """The WSGI app; loads the models once (per gunicorn worker), before the first request."""
    settings = settings or (searcher.settings if searcher else load_settings())
    app = Flask(__name__)
    app.json = JsonProvider(app)
    app.config.update(MAX_CONTENT_LENGTH=settings.api_max_body_bytes, ES_FAQ_SETTINGS=settings,
                      # OPTIONS would answer with an empty body; this API is called server to server.
                      PROVIDE_AUTOMATIC_OPTIONS=False)
    # Searches and FAQ reads give up after search_timeout_s: a hung node costs a serving thread that
    # long, then a 503 (docs/reliability.md).
    searcher = searcher or Searcher(settings, make_client(settings, settings.search_timeout_s))
    searcher.embedder  # noqa: B018  load the models now: a worker that cannot load them fails to boot
    if settings.uses_reranker:
        searcher.reranker  # noqa: B018
        searcher.calibration  # noqa: B018
        differ.load()
    _build_corrector(searcher)
    app.extensions[SEARCHER] = searcher
    if settings.query_log_enabled:
        # The writer thread starts here, in each gunicorn worker (the app is built after the fork).
        querylog = QueryLog(settings, searcher.client.options(request_timeout=settings.es_timeout_s)).start()
        atexit.register(querylog.close)
        app.extensions["es_faq.querylog"] = querylog
    app.before_request(_begin)
    app.after_request(_finish)
    errors.register(app)
    app.register_blueprint(v1)
    app.register_blueprint(ops)
    app.register_blueprint(admin)
    app.register_blueprint(debug_page)
    return app
