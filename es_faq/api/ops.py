"""What operators and tools ask of a server: liveness, readiness, metrics and the API document."""

from __future__ import annotations

from elasticsearch import ApiError, NotFoundError, TransportError
from flask import Blueprint, Response, current_app, jsonify

from ..config.urls import mask_url
from ..engine.client import refusal, unreachable
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
    except ApiError as exc:
        checks["elasticsearch"] = {"ok": False, "detail": refusal(settings, exc).message}
    except TransportError as exc:
        checks["elasticsearch"] = {"ok": False, "detail": unreachable(settings, exc).message}
    alias = settings.index_alias
    if checks["elasticsearch"]["ok"]:
        checks["alias"] = _alias_check(client, settings, alias, settings.embed_model)
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


def _alias_check(client, settings, alias: str, embed_model: str) -> dict:
    """The alias resolves to indices that are all open (a closed one answers no search) and whose vectors
    the server's embedder made: queries embedded by another model find the wrong FAQs, silently."""
    try:
        rows = client.cat.indices(index=alias, h="index,status", format="json").body
    except NotFoundError:
        return {"ok": False, "detail": f"{alias} does not exist; load one with `es-faq index load FILE`"}
    except ApiError as exc:
        return {"ok": False, "detail": refusal(settings, exc, alias).message}
    except TransportError as exc:
        return {"ok": False, "detail": unreachable(settings, exc).message}
    closed = sorted(row["index"] for row in rows if row.get("status") != "open")
    if closed or not rows:
        return {"ok": False, "detail": f"{alias} resolves to closed {', '.join(closed) or 'indices'}: open it "
                "(`POST /<index>/_open`) or point the alias at an open version (`es-faq index rollback`)"}
    try:
        mappings = client.indices.get_mapping(index=alias).body
    except (ApiError, TransportError) as exc:
        return {"ok": False, "detail": f"{alias}: its mapping could not be read ({type(exc).__name__})"}
    made_by = {body["mappings"].get("_meta", {}).get("es_faq", {}).get("model") for body in mappings.values()}
    other = sorted(str(m) for m in made_by - {embed_model})
    if other:
        return {"ok": False, "detail": f"{alias} holds vectors made by {', '.join(other)}, but this server embeds "
                f"queries with {embed_model}: re-embed the knowledge base under {embed_model} (`es-faq index load "
                f"FILE` or `es-faq sync full`), or set ES_FAQ_EMBED_MODEL={other[0]} until then"}
    return {"ok": True, "detail": f"{alias} exists ({', '.join(sorted(row['index'] for row in rows))}, open, "
            f"embedded by {embed_model})"}


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
