"""Flask application factory: /v1/search and /healthz, errors as JSON with stable codes."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..config import Settings, load_settings
from ..errors import EngineUnavailable, EsFaqError, InvalidInput
from ..pipeline import Searcher

v1 = Blueprint("v1", __name__, url_prefix="/v1")


def _searcher() -> Searcher:
    return current_app.extensions["es_faq.searcher"]


def _error(code: str, message: str, status: int, headers: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@v1.post("/search")
def search():
    if not request.is_json:
        return _error("unsupported_media_type", "send the body as application/json", 415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object like {\"query\": \"...\", \"k\": 5}")
    result = _searcher().search(body.get("query"), body.get("k"), body.get("mode", "hybrid"),
                                category=body.get("category"))
    return jsonify(result.as_dict(debug=bool(body.get("debug"))))


def create_app(settings: Settings | None = None, searcher: Searcher | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.api_max_body_bytes
    app.json.ensure_ascii = False
    searcher = searcher or Searcher(settings)
    searcher.embedder  # load the model once per worker, before the first request
    app.extensions["es_faq.searcher"] = searcher
    app.register_blueprint(v1)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "model": searcher.embedder.manifest.name,
                        "provider": searcher.embedder.provider})

    @app.errorhandler(EsFaqError)
    def on_es_faq_error(exc: EsFaqError):
        headers = {"Retry-After": "5"} if isinstance(exc, EngineUnavailable) else None
        return _error(exc.code, exc.message, exc.http_status, headers)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        code = {413: "body_too_large", 404: "not_found", 405: "method_not_allowed"}.get(exc.code, "http_error")
        return _error(code, exc.description, exc.code)

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        return _error("internal", "internal error; see the server log", 500)

    return app
