"""/v1: search and FAQ lookup, thin over the library (pipeline.Searcher, retrieve.fetch_faq)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..engine.client import check_engine
from ..errors import InvalidInput
from ..kb.querylog import FEEDBACK_VALUES
from ..search.retrieve import fetch_faq
from . import metrics
from .context import current_searcher as _searcher
from .errors import FaqNotFound, InvalidJson, UnsupportedMediaType
from .querylog import QueryLog

v1 = Blueprint("v1", __name__, url_prefix="/v1")

# These bounds are also stated in openapi.json; a test checks that the two agree.
CATEGORY_MAX_CHARS = 256
CALLER_ID_CHARS = "A-Za-z0-9._:@-"
CALLER_ID = re.compile(f"[{CALLER_ID_CHARS}]{{1,128}}")
SEARCH_FIELDS = ("query", "k", "category", "mode", "channel_id", "user_id", "debug")
FEEDBACK_FIELDS = ("request_id", "faq_id", "feedback")
FAQ_ID_MAX_CHARS = 512
# A caller's X-Request-ID is kept when it is a plain token (UUIDs, trace ids); anything else could
# forge log lines or bloat them, and is replaced by a fresh id. Feedback names a request the same way.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class SearchRequest:
    query: str
    k: int | None = None
    category: str | None = None
    mode: str | None = None
    channel_id: str | None = None  # written to the query log
    user_id: str | None = None
    debug: bool = False


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800" in the JSON
        raise InvalidInput(f"{name} is not valid Unicode text") from None
    return value


def _json_body():
    if not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")
    data = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if request.content_length is None and len(data) >= current_app.config["MAX_CONTENT_LENGTH"]:
        # A chunked body (no Content-Length) is cut at the limit without an error. One byte more
        # tells a body over it from one that ends there (werkzeug's stream would refuse both).
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidJson(f"the body is not valid JSON: {str(exc)[:200]}") from None


def _known_fields(body, fields: tuple[str, ...], example: str) -> None:
    """A JSON object with no field outside `fields` (a misspelt option must not be ignored)."""
    if not isinstance(body, dict):
        raise InvalidInput(f"the body must be a JSON object like {example}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InvalidInput(f"unknown field {ascii(unknown[0])[:80]}; the fields are {', '.join(fields)}")


def parse_search(body) -> SearchRequest:
    """The search body, checked field by field; the query and k are checked by Searcher.validate."""
    _known_fields(body, SEARCH_FIELDS, '{"query": "...", "k": 5}')
    if "query" not in body:
        raise InvalidInput("query is required")
    fields = {name: body.get(name) for name in SEARCH_FIELDS}
    fields["query"] = _text(fields["query"], "query")
    k = fields["k"]
    if isinstance(k, float) and k.is_integer():  # JSON Schema counts 5.0 as an integer
        fields["k"] = int(k)
    if fields["mode"] is not None:
        _text(fields["mode"], "mode")
    category = fields["category"]
    if category is not None and not 1 <= len(_text(category, "category")) <= CATEGORY_MAX_CHARS:
        raise InvalidInput(f"category must be 1 to {CATEGORY_MAX_CHARS} characters")
    for name in ("channel_id", "user_id"):
        value = fields[name]
        if value is not None and not (isinstance(value, str) and CALLER_ID.fullmatch(value)):
            raise InvalidInput(f"{name} must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -")
    if fields["debug"] is not None and not isinstance(fields["debug"], bool):
        raise InvalidInput("debug must be true or false")
    fields["debug"] = bool(fields["debug"])
    return SearchRequest(**fields)


def parse_feedback(body) -> tuple[str, str, str]:
    """request_id, faq_id and feedback, each checked; unknown fields are refused as in search."""
    _known_fields(body, FEEDBACK_FIELDS, '{"request_id": "...", "faq_id": "...", "feedback": "helpful"}')
    for name in FEEDBACK_FIELDS:
        if body.get(name) is None:
            raise InvalidInput(f"{name} is required")
    request_id = body["request_id"]
    if not (isinstance(request_id, str) and REQUEST_ID.fullmatch(request_id)):
        raise InvalidInput("request_id must be the request_id of a search: 1 to 128 characters of "
                           "A-Z a-z 0-9 . _ : -, starting with a letter or digit")
    faq_id = _text(body["faq_id"], "faq_id")
    if not 1 <= len(faq_id) <= FAQ_ID_MAX_CHARS:
        raise InvalidInput(f"faq_id must be 1 to {FAQ_ID_MAX_CHARS} characters")
    if body["feedback"] not in FEEDBACK_VALUES:
        raise InvalidInput(f"feedback must be one of {', '.join(FEEDBACK_VALUES)}")
    return request_id, faq_id, body["feedback"]


def _querylog() -> QueryLog | None:
    return current_app.extensions.get("es_faq.querylog")


@v1.post("/search")
def search():
    params = parse_search(_json_body())
    check_engine(_searcher().settings)  # before the embedding: a refused search costs nothing
    result = _searcher().search(params.query, params.k, params.mode, category=params.category,
                                matches=params.debug, explain=params.debug)
    metrics.observe_stages(result.timings_ms)
    metrics.observe_decision(result.decision.action)
    metrics.observe_shards(result.shards.retried, result.partial)
    g.partial = result.partial  # for the request log line
    querylog = _querylog()
    if querylog:
        querylog.log_search(g.request_id, result, params.channel_id, params.user_id)
    return jsonify({"request_id": g.request_id, "k": params.k or _searcher().settings.search_k,
                    **result.as_dict(debug=params.debug)})


@v1.post("/feedback")
def feedback():
    request_id, faq_id, label = parse_feedback(_json_body())
    querylog = _querylog()
    if querylog:
        querylog.log_feedback(request_id, faq_id, label)
    # 202: the write is queued, like the search's log document, and may still be dropped.
    return jsonify({"request_id": request_id, "status": "accepted"}), 202


@v1.get("/faqs/<path:faq_id>")
def get_faq(faq_id: str):
    searcher = _searcher()
    faq = fetch_faq(searcher.client, searcher.settings, searcher.settings.index_alias, faq_id)
    if faq is None:
        raise FaqNotFound(f"no FAQ with id {faq_id[:200]!r} in {searcher.settings.index_alias}")
    return jsonify(faq)
