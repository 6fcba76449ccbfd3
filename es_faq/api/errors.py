"""Every error as JSON `{"error": {"code", "message"}}` with a stable code, never a traceback."""

from __future__ import annotations

import logging

from elasticsearch import ApiError, NotFoundError, TransportError
from flask import Flask, current_app, g, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..engine.client import refusal, unreachable
from ..errors import (
    EngineUnavailable,
    EsFaqError,
    IndexMissing,
    InvalidInput,
    ModelError,
    OperatorError,
    PartialResults,
)
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


class JobBusy(EsFaqError):
    """Another admin job runs (es_faq/api/jobs.py): one at a time; `extra` names it."""

    code = "job_busy"
    http_status = 409
    extra: dict | None = None


class JobNotFound(EsFaqError):
    code = "job_not_found"
    http_status = 404


def error_response(code: str, message: str, status: int, headers: dict | None = None, extra: dict | None = None):
    """The error shape (plus `extra` fields, for /readyz); every 503 says when to come back."""
    response = jsonify({**(extra or {}), "error": {"code": code, "message": message}})
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = str(current_app.config["ES_FAQ_SETTINGS"].api_retry_after_s)
    response.headers.update(headers or {})
    g.error_code = code  # for the request log line
    return response


def public_message(exc: EsFaqError) -> str:
    """What an anonymous caller may read of an error: a model error's message names the install's
    files, so only its hint goes out and the rest is logged."""
    if not isinstance(exc, ModelError):
        return exc.message
    return (f"a model is not usable on this server{': ' + exc.hint if exc.hint else ''}; the server log has "
            "the details under this request id")


def register(app: Flask) -> None:
    @app.errorhandler(EsFaqError)
    def on_es_faq_error(exc: EsFaqError):
        # A library error with no HTTP meaning (config, provisioning) is a bug here; a missing model,
        # a closed index or refused credentials are the operator's to fix, and the message says how.
        if exc.http_status == 500 and not isinstance(exc, OperatorError):
            return on_unexpected(exc)
        if isinstance(exc, (EngineUnavailable, IndexMissing)) or (isinstance(exc, OperatorError)
                                                                  and not isinstance(exc, ModelError)):
            metrics.ES_ERRORS.labels(g.get("endpoint", "unmatched"), exc.code).inc()
        if isinstance(exc, PartialResults):
            metrics.PARTIAL.labels("refused").inc()
        if isinstance(exc, OperatorError):
            log.error("%s: %s", exc.code, exc.message, extra={"request_id": g.get("request_id")})
        return error_response(exc.code, public_message(exc), exc.http_status, getattr(exc, "headers", None),
                              getattr(exc, "extra", None))

    @app.errorhandler(TransportError)
    @app.errorhandler(ApiError)
    def on_engine_answer(exc: Exception):
        # An engine call outside the stages that map its errors (retrieve._call): still a documented
        # error. A 404 there is a bug: whoever asked should have known what is missing.
        if isinstance(exc, NotFoundError):
            return on_unexpected(exc)
        settings = current_app.config["ES_FAQ_SETTINGS"]
        mapped = refusal(settings, exc) if isinstance(exc, ApiError) else unreachable(settings, exc)
        return on_es_faq_error(mapped)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        headers = None
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers = {"Allow": ", ".join(sorted(exc.valid_methods))}
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 404:
            message = f"no endpoint at {request.path[:200]}; the API is described at /openapi.json"
        elif status == 413:
            message = (f"the body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes "
                       "(api_max_body_bytes); send less")
        elif headers:
            message = f"{request.method[:20]} is not allowed here; use {headers['Allow']}"
        return error_response(HTTP_CODES.get(status, "http_error"), message, status, headers)

    @app.errorhandler(ParseException)
    def on_malformed_body(exc: ParseException):
        # gunicorn parses a chunked body as the app reads it: a bad chunk size surfaces here.
        return error_response("malformed_body", f"the request body is malformed ({str(exc)[:200]}); send a "
                              "Content-Length body or valid chunked encoding", 400)

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        log.exception("unexpected error", extra={"request_id": g.get("request_id")})
        return error_response("internal", "internal error; the server log has the details under this request id", 500)
