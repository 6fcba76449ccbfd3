#!/usr/bin/env python3
"""Slow clients against `es-faq serve`: connections that send part of a request and stall, and bodies
that trickle in, while /healthz is probed once a second. Prints how many probes were answered.

    bench/drills/slow_clients.py --alias ALIAS [--stalled 8] [--slow-bodies 3] [--seconds 15]
        [--threads N] [--workers N] [--proxy (nginx with deploy/nginx.conf in front)]
        [--url http://127.0.0.1:8080 (a server or proxy already running)]
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from common import REPO, emit, free_port, probe, serve, summary


@contextmanager
def nginx_in_front(upstream: str):
    """nginx with deploy/nginx.conf, its ports changed to a free one and `upstream`; yields its URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    conf = re.sub(r"server 127\.0\.0\.1:8000;", f"server {upstream.split('//')[1]};", conf)
    conf = re.sub(r"listen 127\.0\.0\.1:8080;", f"listen 127.0.0.1:{port};", conf)
    prefix = Path(tempfile.mkdtemp(prefix="es-faq-nginx-"))
    (prefix / "tmp").mkdir()
    prefix.chmod(0o755)
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"])
    try:
        time.sleep(1.0)
        if proc.poll() is not None:
            raise SystemExit("nginx did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(prefix, ignore_errors=True)


def stall(port: int, host: str, stop: threading.Event, body: bool) -> None:
    """One connection: headers cut short (or, with `body`, a body sent one byte a second), held until `stop`."""
    try:
        sock = socket.create_connection((host, port), timeout=5)
        if body:
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: drill\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 10000\r\n\r\n{")
        else:
            sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: drill\r\nContent-Type: appl")
        while not stop.wait(1.0):
            if body:
                sock.sendall(b" ")
        sock.close()
    except OSError:
        pass  # the server closed on us: that is what a defence looks like


def drill(url: str, stalled: int, slow_bodies: int, seconds: float) -> dict:
    host, port = url.split("//")[1].split(":")
    stop = threading.Event()
    threads = [threading.Thread(target=stall, args=(int(port), host, stop, i >= stalled), daemon=True)
               for i in range(stalled + slow_bodies)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let every slow connection reach a worker first
    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        results.append(probe(f"{url}/healthz"))
        time.sleep(max(0.0, 1.0 - results[-1][1]))
    stop.set()
    answered = [s for status, s in results if status == 200]
    return {"stalled": stalled, "slow_bodies": slow_bodies, "probes": len(results), "answered_2s": len(answered),
            "latency": summary(answered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", default=None)
    parser.add_argument("--url", default=None, help="probe this server instead of starting one")
    parser.add_argument("--stalled", type=int, default=8)
    parser.add_argument("--slow-bodies", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--proxy", action="store_true", help="put nginx (deploy/nginx.conf) in front")
    args = parser.parse_args()
    if args.url:
        emit({"url": args.url, **drill(args.url, args.stalled, args.slow_bodies, args.seconds)})
        return
    env = {"ES_FAQ_INDEX_ALIAS": args.alias} if args.alias else {}
    if args.threads:
        env["ES_FAQ_API_THREADS"] = str(args.threads)
    with serve(env, Path("/tmp/es-faq-drill-slow-clients.log"), args.workers) as url:
        setup = {"threads": args.threads or "default", "proxy": "nginx" if args.proxy else None}
        if not args.proxy:
            emit({**setup, **drill(url, args.stalled, args.slow_bodies, args.seconds)})
            return
        with nginx_in_front(url) as proxied:
            emit({**setup, **drill(proxied, args.stalled, args.slow_bodies, args.seconds)})


if __name__ == "__main__":
    main()
