"""Drill: the engine is down (nothing listens on its port). How fast does a search get its 503, and
does it cost any model work? (issue 11: fail fast)

    .venv/bin/python bench/drills/engine_down.py [--requests 400] [--pause-ms 10]

Serves `es-faq serve` (1 worker) pointed at a loopback port nothing listens on, sends searches one
after another for a while (so the breaker opens, half-opens every engine_breaker_open_s and
probes), and prints the latency of the 503s (the first one apart: it went to the engine and embedded
before finding it refused) and the worker's CPU time per request: analysis and embedding take
milliseconds of CPU, a refused search a fraction of one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import psutil
import requests
from common import free_port, serve


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--pause-ms", type=float, default=10.0)
    parser.add_argument("--log", type=Path, default=Path("/tmp/es-faq-engine-down.log"))
    args = parser.parse_args()
    dead = f"http://127.0.0.1:{free_port()}"
    with serve({"ES_FAQ_ES_URL": dead}, args.log, workers=1) as url:
        server = next(p for p in psutil.process_iter(["cmdline"]) if "gunicorn" in " ".join(p.info["cmdline"] or ())
                      and url.rsplit(":", 1)[1] in " ".join(p.info["cmdline"] or ()))
        workers = [c.pid for c in server.children()]
        session = requests.Session()
        rows = []
        before = cpu_seconds(workers)
        started = time.monotonic()
        for i in range(args.requests):
            sent = time.perf_counter()
            response = session.post(f"{url}/v1/search", json={"query": f"花呗怎么延期还款{i % 7}"}, timeout=30)
            rows.append(((time.perf_counter() - sent) * 1000, response.status_code,
                         response.json().get("error", {}).get("message", "")))
            time.sleep(args.pause_ms / 1000)
        wall = time.monotonic() - started
        cpu = cpu_seconds(workers) - before
    rest = sorted(ms for ms, _, _ in rows[1:])
    probes = sum("(ConnectionError)" in message for _, _, message in rows[1:])
    print(json.dumps({
        "requests": len(rows), "seconds": round(wall, 1), "statuses": sorted({s for _, s, _ in rows}),
        "first_ms": round(rows[0][0], 1), "probes_after_first": probes,
        "p50_ms": round(statistics.median(rest), 2), "p99_ms": round(rest[int(len(rest) * 0.99) - 1], 2),
        "max_ms": round(rest[-1], 2), "worker_cpu_ms_per_request": round(cpu / len(rows) * 1000, 3)}))


if __name__ == "__main__":
    main()
