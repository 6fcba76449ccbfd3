"""The HTTP API: the Flask app with the real library, and once through a real gunicorn."""

import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from es_faq.api.app import create_app


@pytest.fixture(scope="module")
def client(settings, searcher, demo_alias):
    app = create_app(settings.replace(index_alias=demo_alias), searcher=None)
    return app.test_client()


def test_search_returns_hits(client):
    response = client.post("/v1/search", json={"query": "可以推迟还小橙花吗", "k": 3})
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["hits"]) == 3 and body["hits"][0]["answer"]
    assert "es_request" not in body


def test_debug_adds_analysis_and_request(client):
    body = client.post("/v1/search", json={"query": "怎么开发票", "debug": True}).get_json()
    assert body["analysis"]["tokens"] and "knn" in body["es_request"]


@pytest.mark.parametrize("payload, code", [
    ({"query": ""}, "invalid_input"), ({"query": "   "}, "invalid_input"), ({"query": 5}, "invalid_input"),
    ({"k": 3}, "invalid_input"), ({"query": "还款", "k": 0}, "invalid_input"), ({"query": "还款", "k": "x"}, "invalid_input"),
    ([1, 2], "invalid_input"),
])
def test_bad_input_is_400_with_stable_shape(client, payload, code):
    response = client.post("/v1/search", json=payload)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


def test_wrong_content_type_and_oversized_body(client, settings):
    assert client.post("/v1/search", data="query=x").status_code == 415
    big = client.post("/v1/search", data=b'{"query": "' + b"a" * settings.api_max_body_bytes + b'"}',
                      content_type="application/json")
    assert big.status_code == 413 and big.get_json()["error"]["code"] == "body_too_large"


def test_engine_down_is_503_with_retry_after(settings, demo_alias):
    app = create_app(settings.replace(es_url="http://127.0.0.1:9", index_alias=demo_alias))
    response = app.test_client().post("/v1/search", json={"query": "还款"})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "engine_unavailable"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_by_gunicorn(demo_alias):
    port = _free_port()
    env = {**os.environ, "ES_FAQ_INDEX_ALIAS": demo_alias}
    server = subprocess.Popen([sys.executable, "-m", "es_faq", "serve", "--port", str(port), "--workers", "1"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{url}/healthz", timeout=5)
                break
            except requests.RequestException:  # bound but the worker is still loading the model
                time.sleep(0.5)
        else:
            pytest.fail("gunicorn did not answer within 60 s")
        assert health.json()["provider"] == "CPUExecutionProvider"
        hits = requests.post(f"{url}/v1/search", json={"query": "怎么注销账号", "k": 2}, timeout=10).json()["hits"]
        assert len(hits) == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
