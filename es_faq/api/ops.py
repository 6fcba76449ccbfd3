"""What operators and tools ask of a server: liveness, readiness, metrics and the API document."""

from __future__ import annotations

from elasticsearch import ApiError, TransportError
from flask import Blueprint, Response, current_app, jsonify

from ..config import mask_url
from ..engine.client import unreachable
from ..errors import EsFaqError
from ..search.pipeline import Searcher
from . import metrics, openapi
from .context import current_searcher as _searcher
from .errors import error_response, public_message

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz():
    """The process is up and its models loaded (create_app fails otherwise); asks nothing of Elasticsearch."""
    searcher = _searcher()
    embedder = searcher.embedder
    reranker = searcher.reranker if searcher.settings.uses_reranker else None
    return jsonify({"status": "ok", "model": embedder.manifest.name, "provider": embedder.provider,
                    "reranker": {"model": reranker.manifest.name, "provider": reranker.provider} if reranker else None})


def readiness(searcher: Searcher) -> dict[str, dict]:
    """Each check as {"ok", "detail"}; Elasticsearch is asked with a short timeout, so a hung node fails fast."""
    settings = searcher.settings
    client = searcher.client.options(request_timeout=settings.api_ready_timeout_s)
    checks = {}
    try:
        health = client.cluster.health().body
        checks["elasticsearch"] = {"ok": health["status"] != "red",
                                   "detail": f"cluster {health['status']} at {mask_url(settings.es_url)}"}
    except (TransportError, ApiError) as exc:
        checks["elasticsearch"] = {"ok": False, "detail": unreachable(settings, exc).message}
    alias = settings.index_alias
    if checks["elasticsearch"]["ok"]:
        try:
            present = bool(client.indices.exists(index=alias))
            checks["alias"] = {"ok": present, "detail": f"{alias} " + ("exists" if present else
                               "does not exist; load one with `es-faq index load FILE`")}
        except (TransportError, ApiError) as exc:
            checks["alias"] = {"ok": False, "detail": unreachable(settings, exc).message}
    else:
        checks["alias"] = {"ok": False, "detail": f"{alias} not checked: Elasticsearch is not reachable"}
    try:
        embedder = searcher.embedder
        checks["model"] = {"ok": True, "detail": embedder.manifest.name}
        checks["execution_provider"] = {"ok": bool(embedder.provider), "detail": embedder.provider or "none"}
    except EsFaqError as exc:
        checks["model"] = {"ok": False, "detail": public_message(exc)}
        checks["execution_provider"] = {"ok": False, "detail": "no model loaded"}
    if settings.uses_reranker:
        try:
            reranker = searcher.reranker
            checks["reranker"] = {"ok": True, "detail": f"{reranker.manifest.name} on {reranker.provider}"}
        except EsFaqError as exc:
            checks["reranker"] = {"ok": False, "detail": public_message(exc)}
    return checks


@ops.get("/readyz")
def readyz():
    checks = readiness(_searcher())
    failed = [name for name, check in checks.items() if not check["ok"]]
    if not failed:
        return jsonify({"status": "ready", "checks": checks})
    if not checks["elasticsearch"]["ok"]:
        metrics.ES_ERRORS.labels("/readyz", "engine_unavailable").inc()
    message = "; ".join(f"{name}: {checks[name]['detail']}" for name in failed)
    return error_response("not_ready", message, 503, extra={"status": "not_ready", "checks": checks})


@ops.get("/metrics")
def prometheus():
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


@ops.get("/openapi.json")
def openapi_json():
    return jsonify(openapi.spec(current_app.config["ES_FAQ_SETTINGS"]))
