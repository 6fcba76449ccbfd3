"""What the drills share: an `es-faq serve` on a free loopback port, probes, and JSON figures."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(env: dict[str, str], log: Path, workers: int | None = None, argv: list[str] | None = None):
    """`es-faq serve` (or `argv`, with {port} filled in) on a free port; yields its base URL, stops it after."""
    port = free_port()
    command = [sys.executable, "-m", "es_faq", "serve", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    if argv:
        command = [part.format(port=port) for part in argv]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env={**os.environ, "ES_FAQ_QUERY_LOG_ENABLED": "false", **env}, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited; see {log}")
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            raise SystemExit(f"the server did not come up; see {log}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Workers:
    """`n` threads each running `self.work(i)` until `stop()`: a drill's clients."""

    def __init__(self, n: int):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.work, args=(i,), daemon=True) for i in range(n)]

    def work(self, i: int) -> None:
        raise NotImplementedError

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 60) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)


def probe(url: str, timeout_s: float = 2.0) -> tuple[int | None, float]:
    """(status or None for no answer in time, seconds) of one GET."""
    started = time.monotonic()
    try:
        status = requests.get(url, timeout=timeout_s).status_code
    except requests.RequestException:
        status = None
    return status, time.monotonic() - started


def summary(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)
    return {"n": len(ordered), "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
            "max_s": round(ordered[-1], 3)}


def emit(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))
