"""The API served as in production: `es-faq serve` (gunicorn, 2 workers) on loopback.

Metrics must add up across the workers, every line on stderr must be JSON, and a worker that
dies is replaced without the server losing its counts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import drop_query_log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`es-faq serve` in a subprocess on a free loopback port; its stderr (JSON lines) goes to a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], workers: int = 2):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "server.log"
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        # TMPDIR keeps the metrics directory the server creates where the test can see it go.
        full_env = {**os.environ, "TMPDIR": str(self.tmp), **env}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "es_faq", "serve", "--port", str(self.port), "--workers", str(workers)],
                env=full_env, stdout=log, stderr=subprocess.STDOUT)

    def wait_up(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited:\n{self.log_path.read_text()[-3000:]}"
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # bound, but no worker has loaded the model yet
                pass
            time.sleep(0.3)
        pytest.fail(f"the server did not answer within {timeout_s} s:\n{self.log_path.read_text()[-3000:]}")

    def lines(self) -> list[dict]:
        """Every line the server wrote, parsed (each must be one JSON object)."""
        text = self.log_path.read_text(encoding="ascii")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def worker_pids(self) -> set[int]:
        return {int(line["message"].rsplit(" ", 1)[1]) for line in self.lines()
                if line["message"].startswith("Booting worker with pid")}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        sample, _, rest = key.partition("{")
        if sample == name and ",".join(sorted(rest.rstrip("}").split(","))) == want:
            return float(value)
    return 0.0


@pytest.fixture
def server(tmp_path, es, demo_alias):
    prefix = f"test-querylog-{uuid.uuid4().hex[:8]}"
    srv = Server(tmp_path, {"ES_FAQ_INDEX_ALIAS": demo_alias, "ES_FAQ_QUERY_LOG_PREFIX": prefix})
    yield srv
    srv.stop()
    drop_query_log(es, prefix)


def test_two_workers_share_metrics_and_log_json(server):
    server.wait_up()
    deadline = time.monotonic() + 60
    while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    workers = sorted(server.worker_pids())
    assert len(workers) == 2, server.log_path.read_text()[-3000:]
    # Both workers accept from one listening socket and a gthread worker takes as many connections as
    # come: left to the kernel, an idle machine handed 400 probes to one worker (CI, stop 30). So each
    # worker in turn is paused (SIGSTOP; well inside gunicorn's 30 s heartbeat timeout) while the
    # other answers its probes, each on a new connection.
    sent = 0
    for paused in workers:
        os.kill(paused, signal.SIGSTOP)
        try:
            for _ in range(8):
                # The long timeout covers a worker still loading its models.
                requests.get(f"{server.url}/healthz", headers={"X-Request-ID": f"probe-{sent}"}, timeout=60)
                sent += 1
        finally:
            os.kill(paused, signal.SIGCONT)
    probed = {line["request_id"]: line["pid"] for line in server.lines()
              if str(line.get("request_id", "")).startswith("probe-")}
    assert [probed[f"probe-{n}"] for n in range(sent)] == [workers[1]] * 8 + [workers[0]] * 8
    # Both answered, so both built the app, and froze what building it made (about 290k objects) out of the
    # cyclic collector: a full collection walked them all, 58-71 ms that stopped every thread of the worker.
    frozen = {int(m.group(1)): int(m.group(2)) for line in server.lines()
              if (m := re.match(r"worker (\d+): app built, (\d+) objects frozen", line["message"]))}
    assert set(frozen) == set(workers) and min(frozen.values()) > 100_000, frozen
    served_by = set(workers)
    hits = requests.post(f"{server.url}/v1/search", json={"query": "怎么注销账号", "k": 2}, timeout=10)
    assert hits.status_code == 200 and len(hits.json()["hits"]) == 2
    bad = requests.post(f"{server.url}/v1/search", data="x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media_type"

    text = requests.get(f"{server.url}/metrics", timeout=10).text
    # What both workers logged, not what this test sent: a start-up probe that timed out while a
    # worker loaded the model is still answered, and counted, once the worker is up.
    served = sum(1 for line in server.lines() if line.get("endpoint") == "/healthz" and line.get("status") == 200)
    assert served >= sent + 1  # + wait_up's probe
    assert metric(text, "es_faq_http_requests_total", endpoint="/healthz", method="GET", status="200") == served
    assert metric(text, "es_faq_http_request_duration_seconds_count", endpoint="/healthz", method="GET",
                  status="200") == served
    assert metric(text, "es_faq_http_requests_total", endpoint="/v1/search", method="POST", status="415") == 1
    for stage in ("analyze", "embed", "retrieve"):
        assert metric(text, "es_faq_search_stage_duration_seconds_count", stage=stage) == 1

    # A worker killed outright is replaced; what it counted stays in the sums.
    victim = next(iter(served_by))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(server.worker_pids() - {victim}) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    server.wait_up()
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert metric(text, "es_faq_http_requests_total", endpoint="/healthz", method="GET", status="200") >= sent + 1
    assert server.proc.poll() is None

    assert server.stop() == 0
    lines = server.lines()  # raises if any line is not JSON
    requests_logged = [line for line in lines if line.get("message") == "request"]
    probe = next(line for line in requests_logged if line["request_id"] == "probe-0")
    assert {k: probe[k] for k in ("method", "path", "status", "level")} == {
        "method": "GET", "path": "/healthz", "status": 200, "level": "INFO"}
    assert probe["latency_ms"] >= 0 and probe["ts"]
    assert any(line["logger"] == "gunicorn.error" and line["message"].startswith("Listening at") for line in lines)
    assert not list(server.tmp.glob("es-faq-metrics-*")), "the metrics directory outlived the server"
