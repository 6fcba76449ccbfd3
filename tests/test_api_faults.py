"""Faults a client or an operator can cause, against the real node and model: a missing model, slow
clients, malformed and oversized chunked bodies (through gunicorn, as served)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import pytest
import requests
import schemathesis

from es_faq.api.app import create_app
from es_faq.api.openapi import spec
from es_faq.engine.client import check_engine, engine_errors, make_client
from es_faq.errors import EngineUnavailable
from es_faq.search.embed import Embedder
from es_faq.search.pipeline import Searcher
from tests.fault_proxy import FaultProxy
from tests.test_api_gunicorn import Server


def test_a_missing_model_is_a_500_that_says_how_to_get_it(settings, es, embedder, analyzer, demo_alias, tmp_path):
    # The reranker looked for in an empty model cache: what a server that never pulled it sees. It is
    # loaded when a search first asks for it (decide_depth 0: the decision does not load it at boot).
    served = settings.replace(index_alias=demo_alias, query_log_enabled=False, model_dir=tmp_path, decide_depth=0,
                              search_mode="hybrid")
    client = create_app(served, Searcher(served, es, embedder, analyzer)).test_client()
    response = client.post("/v1/search", json={"query": "怎么还款", "mode": "rerank"})
    schemathesis.openapi.from_dict(spec(served))["/v1/search"]["POST"].validate_response(response)
    error = response.get_json()["error"]
    assert (response.status_code, error["code"]) == (500, "model_error")
    assert "Retry-After" not in response.headers  # nothing changes by waiting
    assert f"es-faq models pull {served.rerank_model}" in error["message"]
    # The install's paths are for the server log, not for anonymous callers.
    assert str(tmp_path) not in response.get_data(as_text=True) and "server log" in error["message"]


def _raw(port: int, data: bytes) -> tuple[int, dict]:
    """Send bytes as they are; the status and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")]
            if length and len(body) >= length[0]:
                break
    return int(head.split()[1]), json.loads(body)


CHUNKED = b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunked(body: bytes, size: int = 8192, end: bool = True) -> bytes:
    """`body` in chunks of `size`; with `end`, the last chunk (size 0) that ends the body."""
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                    for i in range(0, len(body), size)) + (b"0\r\n\r\n" if end else b"")


@pytest.fixture
def served(tmp_path, demo_alias):
    # decide_depth 0: the decision's cross-encoder is not what these tests are about.
    server = Server(tmp_path, {"ES_FAQ_INDEX_ALIAS": demo_alias, "ES_FAQ_QUERY_LOG_ENABLED": "false",
                               "ES_FAQ_DECIDE_DEPTH": "0"})
    server.wait_up()
    yield server
    server.stop()


def test_slow_clients_never_keep_healthz_waiting(served):
    stalled = []
    try:
        for _ in range(8):  # headers cut short
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Ty")
            stalled.append(sock)
        for _ in range(3):  # a body that never finishes
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{")
            stalled.append(sock)
        time.sleep(1.0)
        for _ in range(10):
            started = time.monotonic()
            assert requests.get(f"{served.url}/healthz", timeout=2).status_code == 200
            assert time.monotonic() - started < 1.0
        answer = requests.post(f"{served.url}/v1/search", json={"query": "怎么注销账号", "k": 1}, timeout=10)
        assert answer.status_code == 200
    finally:
        for sock in stalled:
            sock.close()


def test_200_stalled_connections_leave_healthz_and_searches_answered(served):
    # With 2 workers x 16 threads, about 20 connections stalled mid-headers took every thread: /healthz
    # answered 1 probe in 4 and searches timed out. bench/drills/stalled_clients.py measures the same.
    stalled = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Ty")
            stalled.append(sock)
        time.sleep(1.0)
        for _ in range(5):
            assert requests.get(f"{served.url}/healthz", timeout=2).status_code == 200
            answer = requests.post(f"{served.url}/v1/search", json={"query": "怎么注销账号", "k": 1}, timeout=5)
            assert answer.status_code == 200
    finally:
        for sock in stalled:
            sock.close()


def test_malformed_and_oversized_chunked_bodies_are_json_4xx(served):
    status, body = _raw(served.port, CHUNKED + b"ZZ\r\nabc\r\n0\r\n\r\n")
    assert (status, body["error"]["code"]) == (400, "malformed_body")
    status, body = _raw(served.port, CHUNKED + _chunked(b'{"query": "' + b"a" * 150_000 + b'"}'))
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert "65536 bytes" in body["error"]["message"]
    status, body = _raw(served.port, CHUNKED + _chunked('{"query": "怎么注销账号", "k": 1}'.encode()))
    assert status == 200 and len(body["hits"]) == 1  # a well-formed chunked body is served
    assert not [line for line in served.lines() if line.get("level") == "ERROR"], "a traceback was logged"


def _exchange(port: int, data: bytes, then: bytes = b"",
              wait_s: float = 10) -> tuple[list[tuple[int, dict, bytes]], str]:
    """Send `data`, then keep sending `then` (if any) until the server answers; read until it closes
    the connection. Every answer as (status, lower-cased headers, body), and how the connection ended:
    `closed`, `reset`, or `open` (nothing more within `wait_s`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        if then:
            sock.setblocking(False)
            while True:  # a client that goes on sending: the answer must not wait for it to stop
                try:
                    sock.send(then)
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError:
                    break
                if select.select([sock], [], [], 0)[0]:
                    break
            sock.setblocking(True)
        raw, ended = b"", "closed"
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except TimeoutError:
            ended = "open"
        except ConnectionResetError:
            ended = "reset"
    answers = []
    while raw.startswith(b"HTTP/1.1 "):
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", len(rest)))
        answers.append((int(lines[0].split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return answers, ended


def test_a_chunked_body_over_the_limit_is_a_413_that_closes_the_connection(served):
    # A chunked body (no Content-Length) over api_max_body_bytes was answered 413 `Connection: keep-alive`,
    # and gunicorn then drained up to 64 KiB more of it and closed the connection anyway: a client's next
    # request on it could fail. Now the server reads the limit and one byte, answers 413 with
    # `Connection: close` without waiting for the rest, and closes.
    limit = 65536
    endless = _chunked(b"a" * 8192, end=False)  # sent again and again until the answer comes
    answers, ended = _exchange(served.port, CHUNKED + _chunked(b'{"query": "' + b"a" * limit, end=False),
                               then=endless)
    assert [(status, headers["connection"]) for status, headers, _ in answers] == [(413, "close")]
    assert json.loads(answers[0][2])["error"]["code"] == "body_too_large"
    assert ended == "closed"
    # A body the API does not read at all (415 here) closes the connection too: the rest of it is not read.
    unread = CHUNKED.replace(b"application/json", b"text/plain") + _chunked(b"a" * 150_000)
    answers, ended = _exchange(served.port, unread)
    assert [(status, headers["connection"]) for status, headers, _ in answers] == [(415, "close")]
    # At the limit exactly, the body is served (it was a 413), and a chunked body read to its end keeps
    # the connection for the next request.
    body = '{"query": "怎么注销账号", "k": 1}'.encode()
    at_limit = CHUNKED + _chunked(body + b" " * (limit - len(body)))
    answers, ended = _exchange(served.port, at_limit + b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert [(status, headers["connection"]) for status, headers, _ in answers] == [(200, "keep-alive"), (200, "close")]
    assert len(json.loads(answers[0][2])["hits"]) == 1
    assert not [line for line in served.lines() if line.get("level") == "ERROR"], "a traceback was logged"


def test_a_content_length_shorter_than_the_body_frames_the_rest_as_the_next_request(served):
    # The server cannot know that a Content-Length lies: the bytes after it are the next request on the
    # connection. Here they are no request (100 KB of a query's text): the body as framed is answered,
    # gunicorn refuses the rest at its request-line limit (4094 bytes) and closes; nothing waits on it.
    body = '{"query": "怎么注销账号", "k": 1}'.encode()
    answers, ended = _exchange(served.port, b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(body) + body + b"a" * 100_000)
    assert [status for status, _, _ in answers][:1] == [200] and len(json.loads(answers[0][2])["hits"]) == 1
    assert len(answers) == 2 and answers[1][0] in (400, 414) and answers[1][1]["connection"] == "close"
    assert ended in ("closed", "reset")
    answer = requests.post(f"{served.url}/v1/search", json={"query": "怎么注销账号", "k": 1}, timeout=10)
    assert answer.status_code == 200


def test_after_a_413_the_session_sends_its_next_search(served):
    # gunicorn drains 64 KiB of a refused body at most, then closed the connection its 413 had called
    # keep-alive: requests.Session's next search failed with a ConnectionError, 6 times in 6.
    big = b'{"query": "' + b"a" * 100_000 + b'"}'
    with requests.Session() as session:
        for _ in range(6):
            refused = session.post(f"{served.url}/v1/search", data=big, timeout=10,
                                   headers={"Content-Type": "application/json"})
            assert (refused.status_code, refused.json()["error"]["code"]) == (413, "body_too_large")
            assert refused.headers["Connection"].lower() == "close"
            answer = session.post(f"{served.url}/v1/search", json={"query": "怎么注销账号", "k": 1}, timeout=10)
            assert answer.status_code == 200 and len(answer.json()["hits"]) == 1


def test_two_servers_on_one_host_share_no_control_socket(tmp_path, demo_alias):
    # gunicorn 25+ made a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl (or ~/.gunicorn/): one path
    # for every server of the user, so the second replaced the first one's, and deleted it on exit.
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = {"ES_FAQ_INDEX_ALIAS": demo_alias, "ES_FAQ_QUERY_LOG_ENABLED": "false", "ES_FAQ_DECIDE_DEPTH": "0",
           "XDG_RUNTIME_DIR": str(runtime)}
    servers = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        servers.append(Server(tmp_path / name, env, workers=1))
    try:
        for server in servers:
            server.wait_up()
        assert list(runtime.iterdir()) == []
        assert servers[1].stop() == 0
        assert requests.get(f"{servers[0].url}/healthz", timeout=5).status_code == 200
    finally:
        for server in servers:
            server.stop()


class CountingEmbedder(Embedder):
    """The real embedder, counting its calls: model work a refused search must not do."""

    calls = 0

    def encode(self, *args, **kwargs):
        self.calls += 1
        return super().encode(*args, **kwargs)


def test_a_node_that_refuses_connections_costs_one_search_then_only_a_probe(settings, analyzer, demo_alias):
    with socket.socket() as sock:  # a port nothing listens on: every connection is refused, for real
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = settings.replace(es_url=f"http://127.0.0.1:{port}", index_alias=demo_alias, query_log_enabled=False,
                            engine_breaker_open_s=1.0)
    embedder = CountingEmbedder(dead)
    client = create_app(dead, Searcher(dead, embedder=embedder, analyzer=analyzer)).test_client()
    booted = embedder.calls  # the app's start-up check

    def message() -> str:
        response = client.post("/v1/search", json={"query": "怎么还款"})
        assert response.status_code == 503 and response.headers["Retry-After"]
        return response.get_json()["error"]["message"]
    assert "(ConnectionError)" in message()  # the first one went to the node, and found it refused
    assert embedder.calls == booted + 1
    assert all("refused the connection" in message() for _ in range(3))  # these did not go at all
    time.sleep(dead.engine_breaker_open_s)
    assert "(ConnectionError)" in message()  # the probe, once the breaker's time is up
    assert "refused the connection" in message()
    assert embedder.calls == booted + 1  # neither the refused searches nor the probe embedded anything


def test_the_half_open_probe_is_a_search_and_a_long_request_never_holds_its_slot(settings, demo_alias):
    # Issue 22: the probe was `_cluster/health` (answered while searches hang), and whichever request
    # came first after an outage, an admin preview too, held the probe slot until it finished: every
    # search meanwhile got a 503 with the engine healthy. The outage is real (nothing listens on the
    # proxy's port before it starts), then the node is reached through the proxy.
    proxy = FaultProxy(settings.es_urls[0])
    served = settings.replace(es_url=proxy.url, index_alias=demo_alias,
                              engine_breaker_open_s=0.5)
    with pytest.raises(EngineUnavailable):
        with engine_errors(served):
            make_client(served).search(index=demo_alias, size=1)
    with pytest.raises(EngineUnavailable, match="refused the connection"):
        check_engine(served)  # open
    proxy.start()
    try:
        time.sleep(served.engine_breaker_open_s)
        long_request_entered = threading.Event()

        def long_request() -> None:  # an admin request after the outage: it goes first and takes seconds
            with engine_errors(served):
                long_request_entered.set()
                time.sleep(2)
        worker = threading.Thread(target=long_request)
        worker.start()
        assert long_request_entered.wait(10)
        began = time.monotonic()
        check_engine(served)  # not refused: the probe slot was held for the probe alone
        assert time.monotonic() - began < 1
        probes = [p for p in proxy.paths if "/_search" in p]
        assert probes and not [p for p in proxy.paths if "_cluster/health" in p]
        worker.join()
    finally:
        proxy.stop()


def test_a_node_back_but_slower_than_the_old_probe_timeout_serves_searches_again(settings, embedder, analyzer,
                                                                                  demo_alias):
    # Issue 22: the half-open probe waited 0.25 s (engine_probe_timeout_s) while a search waits
    # search_timeout_s (2 s). After a hang opened the breaker, a node answering in 0.5 s would have served
    # every search, yet each probe timed out and reopened the breaker: searches stayed 503 for good
    # (bench/results/proxy_faults_hang_then_slow_1.json). The probe now waits as long as a search.
    proxy = FaultProxy(settings.es_urls[0], fault="hang", slow_s=0.5).start()
    served = settings.replace(es_url=proxy.url, index_alias=demo_alias, query_log_enabled=False, decide_depth=0,
                              engine_breaker_open_s=0.5)
    assert 0.25 < proxy.slow_s < served.search_timeout_s  # slower than the old probe, well within a search
    client = create_app(served, Searcher(served, make_client(served, served.search_timeout_s), embedder,
                                         analyzer)).test_client()

    def search() -> int:
        return client.post("/v1/search", json={"query": "怎么还款", "mode": "bm25"}).status_code
    try:
        # The hang: engine_breaker_failures (3) searches time out, which opens the breaker.
        assert [search() for _ in range(served.engine_breaker_failures + 1)] == [503] * 4
        proxy.fault = "slow"
        time.sleep(served.engine_breaker_open_s)
        assert [search() for _ in range(3)] == [200, 200, 200]  # the first one probes, and the node is back
        assert [p for p in proxy.paths if "request_cache=false" in p]  # the probe went through the slow proxy
    finally:
        proxy.stop()
