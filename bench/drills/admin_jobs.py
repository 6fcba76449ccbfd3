"""Admin previews against search latency: one client searches back to back, alone (idle), then while
N clients each keep a dictionary preview going (a new one as soon as theirs ends, or 0.5 s after a
409 while another job runs). Prints the searches' p50/p95 in both phases and what the previews got.

    bench/drills/admin_jobs.py --alias ALIAS [--previewers 4] [--idle-seconds 20] [--seconds 40]
        [--change '{"action": "add", "kind": "synonym", "terms": ["分期", "拆分"]}'] [--limit 50]
        [--workers N] [--url http://127.0.0.1:8000 --token TOKEN (a server already running)]

The server is `es-faq serve` as deployed (2 workers by default), with an admin token, replaying the
demo bench's queries (`bench_dir` = the checkout, bench `demo`); the alias is loaded from
demo/faqs.jsonl when it does not exist. A server from before issue 22 answers a preview in the
request (200): the drill counts that as a preview done, so the same command measures the old path.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests
from common import REPO, emit, serve, summary

QUERIES = ["怎么注销账号", "忘记支付密码怎么办", "小橙花可以晚几天还吗", "换了手机号怎么改绑定"]


def ensure_alias(alias: str) -> None:
    """The demo FAQs behind `alias`, unless it exists already."""
    from es_faq.config.load import load_settings
    from es_faq.engine.client import live_indices, make_client

    if not live_indices(make_client(load_settings()), alias):
        subprocess.run([sys.executable, "-m", "es_faq", "index", "load", str(REPO / "demo" / "faqs.jsonl"),
                        "--alias", alias], check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def search_phase(url: str, seconds: float, stop: threading.Event | None = None) -> dict:
    """Searches back to back for `seconds`: the latencies of the 200s, and every status seen."""
    latencies, statuses = [], Counter()
    deadline = time.monotonic() + seconds
    n = 0
    with requests.Session() as session:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            started = time.monotonic()
            try:
                status = session.post(f"{url}/v1/search", json={"query": QUERIES[n % len(QUERIES)], "k": 3},
                                      timeout=10).status_code
            except requests.RequestException:
                status = None
            n += 1
            statuses[str(status)] += 1
            if status == 200:
                latencies.append(time.monotonic() - started)
    return {"searches": n, "statuses": dict(statuses), "latency": summary(latencies)}


def previewer(url: str, token: str, body: dict, stop: threading.Event, tally: Counter, took: list[float]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with requests.Session() as session:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = session.post(f"{url}/v1/admin/dictionary-preview", json=body, headers=headers, timeout=600)
            except requests.RequestException:
                tally["no_answer"] += 1
                continue
            if response.status_code == 409:
                tally["409"] += 1
                stop.wait(0.5)
                continue
            if response.status_code == 200:  # a server that runs the preview in the request
                tally["done_in_request"] += 1
                took.append(time.monotonic() - started)
                continue
            if response.status_code != 202:
                tally[str(response.status_code)] += 1
                stop.wait(1.0)
                continue
            poll = f"{url}{response.json()['poll']}"
            while True:  # the job ends on its own even when the drill stops: wait for it
                job = session.get(poll, headers=headers, timeout=30).json()
                if job["state"] in ("done", "failed"):
                    break
                time.sleep(0.5)
            tally[f"job_{job['state']}"] += 1
            if job["state"] == "done":
                took.append(time.monotonic() - started)


def drill(url: str, token: str, previewers: int, idle_s: float, seconds: float, body: dict) -> dict:
    search_phase(url, min(5.0, idle_s))  # warm-up: the first searches load caches
    idle = search_phase(url, idle_s)
    stop = threading.Event()
    tally: Counter = Counter()
    took: list[float] = []
    threads = [threading.Thread(target=previewer, args=(url, token, body, stop, tally, took), daemon=True)
               for _ in range(previewers)]
    for thread in threads:
        thread.start()
    loaded = search_phase(url, seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=600)
    return {"previewers": previewers, "change": body, "idle": idle, "with_previews": loaded,
            "previews": dict(tally), "preview_seconds": summary(took)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", default="drill-admin-jobs")
    parser.add_argument("--url", default=None, help="probe this server instead of starting one")
    parser.add_argument("--token", default=None, help="its admin token (with --url)")
    parser.add_argument("--previewers", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--change", default='{"action": "add", "kind": "synonym", "terms": ["分期", "拆分"]}')
    parser.add_argument("--limit", type=int, default=50, help="bench queries each preview replays (twice)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    body = {**json.loads(args.change), "bench": "demo", "split": "all", "limit": args.limit}
    if args.url:
        emit({"url": args.url, **drill(args.url, args.token, args.previewers, args.idle_seconds, args.seconds, body)})
        return
    ensure_alias(args.alias)
    token = uuid.uuid4().hex
    env = {"ES_FAQ_INDEX_ALIAS": args.alias, "ES_FAQ_ADMIN_TOKEN": token, "ES_FAQ_BENCH_DIR": str(REPO)}
    with serve(env, Path("/tmp/es-faq-drill-admin-jobs.log"), args.workers) as url:
        emit({"workers": args.workers or "default", **drill(url, token, args.previewers, args.idle_seconds,
                                                            args.seconds, body)})


if __name__ == "__main__":
    main()
