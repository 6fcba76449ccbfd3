"""The HTTP API in-process (Flask test client) with the real library, node and model.

Every response a test looks at is also checked against the OpenAPI document the server serves."""

import json
import logging
import re
import time
import uuid

import pytest
import schemathesis
from prometheus_client import REGISTRY

from es_faq.api import v1 as v1_module
from es_faq.api.app import create_app
from es_faq.api.logs import JsonFormatter
from es_faq.api.openapi import spec
from es_faq.config.settings import SEARCH_MODES
from es_faq.engine.client import make_client
from es_faq.search.pipeline import Searcher
from tests.conftest import drop_query_log
from tests.test_retrieve import SYNTAX_CLAUSES, keys

DEMO_QUERY = "可以推迟还小橙花吗"


@pytest.fixture(scope="module")
def app(rerank_settings, es, embedder, analyzer, demo_alias):
    """The app over the demo knowledge base, sharing the session's client and models (mode rerank runs the
    session's small cross-encoder); its query log is its own."""
    served = rerank_settings.replace(index_alias=demo_alias, query_log_prefix=f"test-querylog-{uuid.uuid4().hex[:8]}")
    app = create_app(served, searcher=Searcher(served, es, embedder, analyzer))
    yield app
    app.extensions["es_faq.querylog"].close()
    drop_query_log(es, served.query_log_prefix)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def api_schema(client):
    return schemathesis.openapi.from_dict(client.get("/openapi.json").get_json())


@pytest.fixture
def conforms(api_schema):
    """Check a response against the operation's documented response, and the X-Request-ID header."""
    def check(method: str, path: str, response):
        api_schema[path][method].validate_response(response)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", response.headers["X-Request-ID"])
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) > 0
        return response
    return check


def _search(client, conforms, payload, **kwargs):
    return conforms("POST", "/v1/search", client.post("/v1/search", json=payload, **kwargs))


# --- search -------------------------------------------------------------------------------------------

def test_search_returns_faqs_with_request_id_and_timings(client, conforms):
    response = _search(client, conforms, {"query": DEMO_QUERY, "k": 3})
    assert response.status_code == 200
    body = response.get_json()
    assert [h["faq_id"] for h in body["hits"]][0] == "demo-031" and len(body["hits"]) == 3
    assert body["hits"][0]["answer"] and body["hits"][0]["score"] > 0
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)  # the decision verifies the first hit, it does not reorder
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["k"] == 3 and body["mode"] == "hybrid"  # search_mode's default
    decision = body["decision"]
    assert decision["action"] in ("answer", "suggest") and decision["reason"].startswith("P(right)")
    assert 0 < decision["probability"] <= 1 and isinstance(decision["pair_score"], float)
    assert decision["margin"] is None  # decide_depth 1: no runner-up was scored
    assert {"analyze", "embed", "retrieve", "total"} <= set(body["timings_ms"])
    assert not {"analysis", "es_request", "stages"} & set(body) and "scores" not in body["hits"][0]


@pytest.mark.parametrize("incoming, kept", [
    ("abc-123", True), ("3f2b8c1e-6a53-4a37-9d3e-2b1f0c9a7e55", True), ("trace:01.a_b", True),
    ("has space", False), ("-leading", False), ("x" * 129, False), ("中文", False), ("", False),
])
def test_incoming_request_id_is_honoured_only_when_sane(client, conforms, incoming, kept):
    response = conforms("GET", "/healthz", client.get("/healthz", headers={"X-Request-ID": incoming}))
    assert (response.headers["X-Request-ID"] == incoming) is kept


def test_debug_adds_analysis_request_and_score_breakdown(client, conforms, settings):
    body = _search(client, conforms, {"query": DEMO_QUERY, "k": 3, "mode": "hybrid", "debug": True}).get_json()
    assert body["analysis"]["tokens"] and body["analysis"]["original"] == DEMO_QUERY
    assert set(body["stages"]) == {"lexical", "vector", "fused", "decided"}
    # The cross-encoder scored the fused head, in the fused order.
    decided = [s["faq_id"] for s in body["stages"]["decided"]]
    assert decided == [s["faq_id"] for s in body["stages"]["fused"]][:len(decided)]
    top = body["hits"][0]
    assert top["matched"]["lexical"]["text"] and top["matched"]["vector"]["text"]
    assert top["scores"]["fused"] == top["score"] and top["scores"]["rerank"] is None
    assert top["scores"]["cross_encoder"] == body["decision"]["pair_score"]
    assert top["scores"]["lexical"] == top["matched"]["lexical"]["score"]
    if settings.fusion == "sum":  # the engine adds the two boosted sides: the breakdown must add up
        request = body["es_request"]
        assert set(request) >= {"query", "knn"}
        for hit in body["hits"]:
            s = hit["scores"]
            lexical, vector = request["query"]["bool"]["boost"], request["knn"]["boost"]
            assert lexical * (s["lexical"] or 0) + vector * (s["vector"] or 0) == pytest.approx(s["fused"], rel=1e-4)


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_each_mode(client, conforms, mode):
    body = _search(client, conforms, {"query": "忘了支付密码", "k": 2, "mode": mode, "debug": True}).get_json()
    assert body["mode"] == mode
    if mode == "rerank":  # the cross-encoder reorders the fused candidates; it finds no new ones
        assert "demo-001" in [s["faq_id"] for s in body["stages"]["reranked"]]
    else:
        assert body["hits"][0]["faq_id"] == "demo-001"
    side = body["hits"][0]["scores"]
    assert (side["lexical"] is None) is (mode == "vector") and (side["vector"] is None) is (mode == "bm25")
    assert (side["rerank"] is None) is (mode != "rerank")
    if mode == "rerank":
        assert side["rerank"] == body["hits"][0]["score"] == body["stages"]["reranked"][0]["score"]


def test_category_filter_and_caller_ids(client, conforms):
    body = _search(client, conforms, {"query": "怎么还款", "category": "退货退款", "channel_id": "app.ios",
                                      "user_id": "u-1234@shop", "k": 10}).get_json()
    assert body["hits"] and {h["category"] for h in body["hits"]} == {"退货退款"}


def test_optional_fields_may_be_null(client, conforms):
    body = _search(client, conforms, {"query": DEMO_QUERY, "k": None, "mode": None, "category": None,
                                      "channel_id": None, "user_id": None, "debug": None}).get_json()
    served = client.application.config["ES_FAQ_SETTINGS"]
    assert body["k"] == served.search_k and body["mode"] == served.search_mode


@pytest.mark.parametrize("payload, code, says", [
    ({"query": ""}, "invalid_input", "empty"),
    ({"query": " \u3000\t"}, "invalid_input", "empty"),
    ({"query": 5}, "invalid_input", "query must be a string"),
    ({"query": None}, "invalid_input", "query must be a string"),
    ({"k": 3}, "invalid_input", "query is required"),
    ({"query": "还款", "k": 0}, "invalid_input", "k must be"),
    ({"query": "还款", "k": 101}, "invalid_input", "k must be"),
    ({"query": "还款", "k": "5"}, "invalid_input", "k must be"),
    ({"query": "还款", "k": True}, "invalid_input", "k must be"),
    ({"query": "还款", "k": 2.5}, "invalid_input", "k must be"),
    ({"query": "还款", "mode": "fuzzy"}, "invalid_input", "mode must be one of"),
    ({"query": "还款", "mode": ""}, "invalid_input", "mode must be one of"),
    ({"query": "还款", "category": ""}, "invalid_input", "category must be"),
    ({"query": "还款", "category": "x" * 257}, "invalid_input", "category must be"),
    ({"query": "还款", "category": ["a"]}, "invalid_input", "category must be a string"),
    ({"query": "还款", "channel_id": "has space"}, "invalid_input", "channel_id must be"),
    ({"query": "还款", "user_id": "x" * 129}, "invalid_input", "user_id must be"),
    ({"query": "还款", "user_id": 42}, "invalid_input", "user_id must be"),
    ({"query": "还款", "debug": "yes"}, "invalid_input", "debug must be"),
    ({"query": "还款", "top_k": 3}, "invalid_input", "unknown field 'top_k'"),
    ([1, 2], "invalid_input", "JSON object"),
    ("还款", "invalid_input", "JSON object"),
])
def test_bad_input_is_400_with_stable_shape(client, conforms, payload, code, says):
    response = _search(client, conforms, payload)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert says in response.get_json()["error"]["message"]


def test_query_length_limit_counts_characters(client, conforms, settings):
    limit = settings.query_max_chars
    assert _search(client, conforms, {"query": "还" * limit, "k": 1}).status_code == 200
    assert _search(client, conforms, {"query": "还" * (limit + 1)}).status_code == 400


@pytest.mark.parametrize("raw, code", [
    (b'{"query": "x"', "invalid_json"), (b"", "invalid_json"), (b"\xff\xfe{", "invalid_json"),
    (b"[" * 20000 + b"]" * 20000, "invalid_json"),  # deeper than Python's JSON decoder recurses
    (b'{"query": "\\ud800"}', "invalid_input"),  # a lone surrogate is not text
    (b'{"query": "ok", "\\udfff": 1}', "invalid_input"),
])
def test_body_that_is_not_json_text(client, conforms, raw, code):
    response = conforms("POST", "/v1/search", client.post("/v1/search", data=raw, content_type="application/json"))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code


def test_wrong_content_type_and_oversized_body(client, conforms, settings):
    for kwargs in ({"data": "query=x"}, {"data": '{"query": "x"}', "content_type": "text/plain"}):
        response = conforms("POST", "/v1/search", client.post("/v1/search", **kwargs))
        assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_media_type"
    big = client.post("/v1/search", data=b'{"query": "' + b"a" * settings.api_max_body_bytes + b'"}',
                      content_type="application/json")
    conforms("POST", "/v1/search", big)
    assert big.status_code == 413 and big.get_json()["error"]["code"] == "body_too_large"


def test_unknown_path_and_wrong_method_are_json(client):
    missing = client.get("/v2/search")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    for method in ("get", "put", "delete", "options"):
        wrong = getattr(client, method)("/v1/search")
        assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
        assert wrong.get_json()["error"]["code"] == "method_not_allowed"
        assert wrong.headers["X-Request-ID"]


# --- Elasticsearch query syntax cannot be injected ----------------------------------------------------

INJECTIONS = ['title:x OR *', '*:*', 'enabled:false', '{"match_all": {}}', '{"query": {"match_all": {}}}',
              'question:* AND NOT answer:""', '") OR 1=1 --', '/.*/', 'a~2 b^10', '_exists_:answer']


def _match_texts(node):
    """Every string that reaches Elasticsearch as a `match` query's text."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "match":
                yield from (spec["query"] for spec in value.values())
            else:
                yield from _match_texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _match_texts(value)


@pytest.mark.parametrize("query", INJECTIONS)
def test_query_syntax_is_plain_text(client, conforms, query):
    response = _search(client, conforms, {"query": query, "k": 5, "mode": "bm25", "debug": True})
    assert response.status_code == 200
    body = response.get_json()
    assert not SYNTAX_CLAUSES & set(keys(body["es_request"]))
    analysis = body["analysis"]
    words = set(analysis["tokens"]) | {alt for alts in analysis.get("synonyms", {}).values() for alt in alts}
    for text in _match_texts(body["es_request"]):
        assert set(text.split()) <= words  # the user's words arrive only as the text of a `match`
    # Operators are punctuation to the analyser; OR, AND, NOT are just words to match.
    assert not {"*", ":", "*:*", "{", "}", "~", "^", "/"} & set(analysis["tokens"])
    assert len(body["hits"]) <= 5


def test_category_is_an_exact_value_not_syntax(client, conforms):
    for category in ['* OR *', '退货退款" OR "1"="1', "*"]:
        body = _search(client, conforms, {"query": "怎么还款", "category": category}).get_json()
        assert body["hits"] == []


# --- FAQ lookup ---------------------------------------------------------------------------------------

def test_get_faq(client, conforms):
    response = conforms("GET", "/v1/faqs/{faq_id}", client.get("/v1/faqs/demo-001"))
    assert response.status_code == 200
    faq = response.get_json()
    assert faq["id"] == "demo-001" and faq["question"] == "忘记支付密码怎么办？"
    assert faq["similar_questions"][0] == "支付密码忘了怎么重置" and faq["enabled"] is True
    assert faq["answer"].startswith("请在「我的」") and faq["category"] == "账户与安全"


@pytest.mark.parametrize("faq_id", ["no-such-faq", "x" * 600, "a/b", "%E4%B8%AD", "..%2F_search"])
def test_absent_faq_is_404(client, conforms, faq_id):
    response = conforms("GET", "/v1/faqs/{faq_id}", client.get(f"/v1/faqs/{faq_id}"))
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "faq_not_found"


# --- health, readiness, Elasticsearch down ------------------------------------------------------------

def test_healthz_and_readyz(client, conforms):
    health = conforms("GET", "/healthz", client.get("/healthz")).get_json()
    # The default search decides with the cross-encoder, so it is part of serving.
    assert health == {"status": "ok", "model": "embedder-zh-d", "provider": "CPUExecutionProvider",
                      "reranker": {"model": "reranker-zh", "provider": "CPUExecutionProvider"}}
    ready = conforms("GET", "/readyz", client.get("/readyz"))
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    assert ready.get_json()["checks"]["execution_provider"]["detail"] == "CPUExecutionProvider"
    assert ready.get_json()["checks"]["reranker"]["ok"]


def test_rerank_serving_reports_the_cross_encoder(rerank_settings, es, embedder, analyzer, demo_alias, conforms):
    served = rerank_settings.replace(index_alias=demo_alias, query_log_enabled=False, search_mode="rerank")
    client = create_app(served, Searcher(served, es, embedder, analyzer)).test_client()
    health = conforms("GET", "/healthz", client.get("/healthz")).get_json()
    assert health["reranker"] == {"model": served.rerank_model, "provider": "CPUExecutionProvider"}
    ready = conforms("GET", "/readyz", client.get("/readyz")).get_json()
    assert ready["checks"]["reranker"] == {"ok": True, "detail": f"{served.rerank_model} on CPUExecutionProvider"}
    body = _search(client, conforms, {"query": DEMO_QUERY, "k": 3}).get_json()
    scores = [h["score"] for h in body["hits"]]
    assert body["mode"] == "rerank" and scores == sorted(scores, reverse=True)
    assert body["decision"]["pair_score"] is not None and body["timings_ms"]["rerank"] > 0


def test_a_missing_reranker_fails_the_boot(settings, es, embedder, analyzer):
    from es_faq.errors import ModelError

    served = settings.replace(search_mode="rerank", rerank_model="no-such-reranker", query_log_enabled=False)
    with pytest.raises(ModelError, match="no model manifest"):
        create_app(served, Searcher(served, es, embedder, analyzer))


def test_a_worker_reads_the_differences_tables_before_its_first_search(settings, es, embedder, analyzer):
    """jieba's dictionary and IDF table take about 0.75 s to read: a new gunicorn worker's first searches took
    1-3 s while they loaded, past many clients' timeouts. The app reads them when it is built."""
    from es_faq.search import differ

    differ._idf.cache_clear()
    differ.tokens.cache_clear()
    served = settings.replace(query_log_enabled=False)
    assert served.uses_reranker
    create_app(served, Searcher(served, es, embedder, analyzer))
    assert differ._idf.cache_info().currsize == 1 and differ.tokens.cache_info().currsize == 1


def test_a_worker_builds_its_index_typo_corrector_before_its_first_search(settings, es, embedder, analyzer,
                                                                           demo_alias):
    """The typo corrector is built from the served index's vocabulary (100-250 ms on the benches): a worker builds
    it when the app is built, and an engine that does not answer then does not stop the worker booting."""
    served = settings.replace(index_alias=demo_alias, query_log_enabled=False)
    assert served.typo_correction
    searcher = Searcher(served, es, embedder, analyzer)
    create_app(served, searcher)
    assert searcher._correctors is not None and len(searcher._correctors._cache) == 1
    assert searcher.corrector(demo_alias) is next(iter(searcher._correctors._cache.values()))

    down = served.replace(es_url="http://127.0.0.1:9")
    cold = Searcher(down, make_client(down, 1), embedder, analyzer)
    create_app(down, cold)
    assert cold._correctors is not None and not cold._correctors._cache


def test_readyz_names_the_missing_alias(settings, es, embedder, analyzer, conforms):
    served = settings.replace(index_alias="no-such-alias", query_log_enabled=False)
    client = create_app(served, Searcher(served, es, embedder, analyzer)).test_client()
    response = conforms("GET", "/readyz", client.get("/readyz"))
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "not_ready"
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["alias"]
    assert body["error"]["code"] == "not_ready" and body["error"]["message"].startswith("alias: no-such-alias")
    missing = conforms("POST", "/v1/search", client.post("/v1/search", json={"query": "还款"}))
    assert missing.status_code == 503 and missing.get_json()["error"]["code"] == "index_missing"


def test_readyz_fails_when_the_live_vectors_come_from_another_embedder(settings, es, analyzer, demo_alias, conforms):
    """After an embedder upgrade, queries embedded by the new model against the old model's vectors find the
    wrong FAQs without any error: the server is not ready until the knowledge base is re-embedded."""
    served = settings.replace(index_alias=demo_alias, embed_model="bge-small-zh-v1.5", query_log_enabled=False)
    client = create_app(served, Searcher(served, es, analyzer=analyzer)).test_client()
    body = conforms("GET", "/readyz", client.get("/readyz")).get_json()
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["alias"]
    assert f"holds vectors made by {settings.embed_model}, but this server embeds queries with bge-small-zh-v1.5" \
        in body["error"]["message"]
    assert f"ES_FAQ_EMBED_MODEL={settings.embed_model}" in body["error"]["message"]


@pytest.fixture(scope="module")
def dead_engine_client(settings, embedder, demo_alias):
    # Port 9 (discard) refuses connections on loopback: the fastest way a node can be "down".
    down = settings.replace(es_url="http://127.0.0.1:9", index_alias=demo_alias)
    return create_app(down, Searcher(down, embedder=embedder)).test_client()


def test_engine_down_is_fast_503_with_retry_after(dead_engine_client, conforms):
    for method, path, call in [("POST", "/v1/search", lambda c: c.post("/v1/search", json={"query": "还款"})),
                               ("GET", "/v1/faqs/{faq_id}", lambda c: c.get("/v1/faqs/demo-001"))]:
        started = time.monotonic()
        response = conforms(method, path, call(dead_engine_client))
        assert time.monotonic() - started < 2
        assert response.status_code == 503 and response.get_json()["error"]["code"] == "engine_unavailable"
    ready = conforms("GET", "/readyz", dead_engine_client.get("/readyz")).get_json()
    assert not ready["checks"]["elasticsearch"]["ok"] and not ready["checks"]["alias"]["ok"]
    assert ready["checks"]["model"]["ok"]
    assert ready["error"]["message"].startswith("elasticsearch: Elasticsearch is not reachable")


def test_unexpected_error_is_500_json_without_traceback(app, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail")
    # A fake fault: the library raising something it never should, which no real input produces.
    monkeypatch.setattr(app.extensions["es_faq.searcher"], "search", broken)
    response = app.test_client().post("/v1/search", json={"query": "还款"})
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal", "message": response.get_json()["error"]["message"]}}
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert logged and logged[0].request_id == response.headers["X-Request-ID"] and logged[0].exc_info


# --- metrics, logs, the document -----------------------------------------------------------------------

def _sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_requests_stages_and_es_errors(client, dead_engine_client):
    labels = {"endpoint": "/v1/search", "method": "POST", "status": "200"}
    before = (_sample("es_faq_http_requests_total", **labels),
              _sample("es_faq_http_request_duration_seconds_count", **labels),
              _sample("es_faq_search_stage_duration_seconds_count", stage="embed"),
              _sample("es_faq_es_errors_total", endpoint="/v1/search", code="engine_unavailable"))
    client.post("/v1/search", json={"query": DEMO_QUERY})
    dead_engine_client.post("/v1/search", json={"query": DEMO_QUERY})
    after = (_sample("es_faq_http_requests_total", **labels),
             _sample("es_faq_http_request_duration_seconds_count", **labels),
             _sample("es_faq_search_stage_duration_seconds_count", stage="embed"),
             _sample("es_faq_es_errors_total", endpoint="/v1/search", code="engine_unavailable"))
    # A failed search reports no stage timings.
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]
    client.get("/v1/faqs/demo-001")
    assert _sample("es_faq_http_requests_total", endpoint="/v1/faqs/{faq_id}", method="GET", status="200") >= 1
    client.open("/does/not/exist", method="BREW")
    assert _sample("es_faq_http_requests_total", endpoint="unmatched", method="other", status="404") >= 1
    text = client.get("/metrics")
    assert text.status_code == 200 and text.content_type.startswith("text/plain")
    for name in ("es_faq_http_requests_total", "es_faq_http_request_duration_seconds_bucket",
                 "es_faq_search_stage_duration_seconds_bucket", "es_faq_es_errors_total"):
        assert name in text.get_data(as_text=True)


def test_one_json_log_line_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger="es_faq.api")
    response = client.post("/v1/search", json={"query": ""}, headers={"X-Request-ID": "log-test-1"})
    records = [r for r in caplog.records if r.name == "es_faq.api" and getattr(r, "request_id", None) == "log-test-1"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["message"] == "request" and line["level"] == "INFO"
    assert {k: line[k] for k in ("request_id", "method", "path", "endpoint", "status", "error_code")} == {
        "request_id": "log-test-1", "method": "POST", "path": "/v1/search", "endpoint": "/v1/search",
        "status": response.status_code, "error_code": "invalid_input"}
    assert line["latency_ms"] >= 0 and line["ts"].endswith("+00:00")


def test_openapi_document_is_valid_and_states_the_running_limits(client, api_schema, settings):
    api_schema.validate()  # against the OpenAPI 3.1 meta-schema
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1") and doc == spec(settings)
    fields = doc["components"]["schemas"]["SearchRequest"]["properties"]
    assert fields["query"]["maxLength"] == settings.query_max_chars
    assert (fields["k"]["maximum"], fields["k"]["default"]) == (settings.search_max_k, settings.search_k)
    assert fields["category"]["maxLength"] == v1_module.CATEGORY_MAX_CHARS
    assert set(fields) == set(v1_module.SEARCH_FIELDS)
    for name in ("channel_id", "user_id"):
        assert fields[name]["maxLength"] == 128 and fields[name]["pattern"] == f"^[{v1_module.CALLER_ID_CHARS}]+$"
    # The "not blank" pattern is exactly Python's idea of whitespace (what Searcher.validate strips).
    blank = re.compile(fields["query"]["pattern"])
    for code in range(0x10000):
        assert (blank.search(chr(code)) is None) is chr(code).isspace(), hex(code)
