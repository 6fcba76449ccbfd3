#!/usr/bin/env python3
"""Stalled clients against a bare `es-faq serve`: N connections send part of their headers and stall
for the whole drill, while /healthz and a search are each probed once a second. Prints how many
probes were answered, and how fast.

    bench/drills/stalled_clients.py --alias ALIAS [--stalled 200] [--seconds 15]
        [--worker-class gthread|gevent] [--threads N] [--workers N]
        [--url http://127.0.0.1:8000 (a server already running)]

Without --worker-class or --threads the server runs as `es-faq serve` does by default, which is the
production setup docs/reliability.md describes.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import requests
from common import emit, serve, summary

QUERY = {"query": "怎么注销账号", "k": 3}


def open_stalled(host: str, port: int, n: int) -> tuple[list[socket.socket], int]:
    """`n` connections, each with its headers cut short; (the sockets, how many could not connect)."""
    socks, failed = [], 0
    for _ in range(n):
        try:
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: drill\r\nContent-Type: appl")
            socks.append(sock)
        except OSError:
            failed += 1
    return socks, failed


def still_open(socks: list[socket.socket]) -> int:
    """How many stalled connections the server has not closed (a closed one reads as EOF)."""
    alive = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            alive += sock.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def timed(send) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status = send().status_code
    except requests.RequestException:
        status = None
    return status, time.monotonic() - started


def drill(url: str, stalled: int, seconds: float) -> dict:
    host, port = url.split("//")[1].split(":")
    socks, refused = open_stalled(host, int(port), stalled)
    time.sleep(1.0)  # let every stalled connection reach a worker
    health: list[tuple[int | None, float]] = []
    searches: list[tuple[int | None, float]] = []

    def search_loop(stop: threading.Event) -> None:
        while not stop.is_set():
            searches.append(timed(lambda: requests.post(f"{url}/v1/search", json=QUERY, timeout=5)))
            stop.wait(max(0.0, 1.0 - searches[-1][1]))

    stop = threading.Event()
    searcher = threading.Thread(target=search_loop, args=(stop,), daemon=True)
    searcher.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health.append(timed(lambda: requests.get(f"{url}/healthz", timeout=2)))
        time.sleep(max(0.0, 1.0 - health[-1][1]))
    stop.set()
    searcher.join(timeout=10)
    held = still_open(socks)
    for sock in socks:
        sock.close()
    ok_health = [s for status, s in health if status == 200]
    ok_search = [s for status, s in searches if status == 200]
    return {"stalled": stalled, "could_not_connect": refused, "stalled_still_open_at_end": held,
            "healthz": {"probes": len(health), "answered_2s": len(ok_health), "latency": summary(ok_health)},
            "search": {"probes": len(searches), "answered_200_5s": len(ok_search), "latency": summary(ok_search),
                       "statuses": sorted({str(status) for status, _ in searches})}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", default=None)
    parser.add_argument("--url", default=None, help="probe this server instead of starting one")
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--worker-class", default=None, help="ES_FAQ_API_WORKER_CLASS for the server")
    args = parser.parse_args()
    if args.url:
        emit({"url": args.url, **drill(args.url, args.stalled, args.seconds)})
        return
    env = {"ES_FAQ_INDEX_ALIAS": args.alias} if args.alias else {}
    if args.threads:
        env["ES_FAQ_API_THREADS"] = str(args.threads)
    if args.worker_class:
        env["ES_FAQ_API_WORKER_CLASS"] = args.worker_class
    with serve(env, Path("/tmp/es-faq-drill-stalled-clients.log"), args.workers) as url:
        setup = {"worker_class": args.worker_class or "default", "threads": args.threads or "default"}
        emit({**setup, **drill(url, args.stalled, args.seconds)})


if __name__ == "__main__":
    main()
