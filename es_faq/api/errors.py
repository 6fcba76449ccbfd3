"""Every error as JSON `{"error": {"code", "message"}}` with a stable code, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..errors import EngineUnavailable, EsFaqError, IndexMissing, InvalidInput
from . import metrics

log = logging.getLogger("es_faq.api")

HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


class InvalidJson(InvalidInput):
    code = "invalid_json"


class UnsupportedMediaType(EsFaqError):
    code = "unsupported_media_type"
    http_status = 415


class FaqNotFound(EsFaqError):
    code = "faq_not_found"
    http_status = 404


# /v1/admin (es_faq/api/admin.py).
class AdminDisabled(EsFaqError):
    """No admin_token is configured: the admin endpoints are off, never open."""

    code = "admin_disabled"
    http_status = 404


class Unauthorized(EsFaqError):
    code = "unauthorized"
    http_status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="es-faq admin"'}


class EntryNotFound(EsFaqError):
    code = "entry_not_found"
    http_status = 404


class SyncNotConfigured(EsFaqError):
    code = "sync_not_configured"
    http_status = 400


def error_response(code: str, message: str, status: int, headers: dict | None = None, extra: dict | None = None):
    """The error shape (plus `extra` fields, for /readyz); every 503 says when to come back."""
    response = jsonify({**(extra or {}), "error": {"code": code, "message": message}})
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = str(current_app.config["ES_FAQ_SETTINGS"].api_retry_after_s)
    response.headers.update(headers or {})
    g.error_code = code  # for the request log line
    return response


def register(app: Flask) -> None:
    @app.errorhandler(EsFaqError)
    def on_es_faq_error(exc: EsFaqError):
        if exc.http_status == 500:  # a library error with no HTTP meaning (config, provisioning): a bug here
            return on_unexpected(exc)
        if isinstance(exc, (EngineUnavailable, IndexMissing)):
            metrics.ES_ERRORS.labels(g.get("endpoint", "unmatched"), exc.code).inc()
        return error_response(exc.code, exc.message, exc.http_status, getattr(exc, "headers", None))

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        headers = None
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers = {"Allow": ", ".join(sorted(exc.valid_methods))}
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 404:
            message = f"no endpoint at {request.path[:200]}; the API is described at /openapi.json"
        elif headers:
            message = f"{request.method[:20]} is not allowed here; use {headers['Allow']}"
        return error_response(HTTP_CODES.get(status, "http_error"), message, status, headers)

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        log.exception("unexpected error", extra={"request_id": g.get("request_id")})
        return error_response("internal", "internal error; the server log has the details under this request id", 500)
