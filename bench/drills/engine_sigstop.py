#!/usr/bin/env python3
"""A hung Elasticsearch under load: `kill -STOP` of a node of the drill's own for some seconds while
clients search through `es-faq serve` and /healthz and /readyz are probed; then `kill -CONT`.

    bench/drills/engine_sigstop.py [--clients 20] [--before 5] [--stop 10] [--after 5]
        [--es-url http://127.0.0.1:9230] [--engine-dir /var/lib/es-faq/drill-engine] [--keep-node]

The node is started (`es-faq engine up`), given the demo FAQs, and stopped again at the end unless
--keep-node; the shared nodes on 9200/9201 are never touched. Prints JSON figures per phase."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path

import requests
from common import REPO, Workers, emit, probe, serve, summary


class Clients(Workers):
    """`n` clients, each searching again as soon as it has an answer (or gives up after 30 s)."""

    def __init__(self, url: str, n: int):
        self.url, self.outcomes = url, []
        super().__init__(n)

    def work(self, i: int) -> None:
        session = requests.Session()
        queries = ["可以推迟还小橙花吗", "忘了支付密码", "怎么开发票", "账户被冻结了"]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status = session.post(f"{self.url}/v1/search", json={"query": queries[i % 4], "k": 3},
                                      timeout=30).status_code
            except requests.RequestException:
                status = None
            self.outcomes.append((started, time.monotonic() - started, status))

    def phase(self, start: float, end: float) -> dict:
        rows = [o for o in self.outcomes if start <= o[0] < end]
        statuses: dict = {}
        for _, _, status in rows:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        return {"requests": len(rows), "statuses": statuses, "latency": summary([s for _, s, _ in rows])}


def prober(url: str, path: str, until: threading.Event, into: list) -> None:
    while not until.is_set():
        into.append((time.monotonic(), *probe(f"{url}{path}", timeout_s=5)))
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--before", type=float, default=5)
    parser.add_argument("--stop", type=float, default=10)
    parser.add_argument("--after", type=float, default=5)
    parser.add_argument("--es-url", default="http://127.0.0.1:9230")
    parser.add_argument("--engine-dir", default="/var/lib/es-faq/drill-engine")
    parser.add_argument("--keep-node", action="store_true")
    args = parser.parse_args()
    os.environ.update(ES_FAQ_ES_URL=args.es_url, ES_FAQ_ENGINE_DIR=args.engine_dir)

    from es_faq.config.load import load_settings
    from es_faq.engine import local as engine
    from es_faq.engine import provision
    from es_faq.engine.client import make_client
    from es_faq.kb.faq import read_jsonl
    from es_faq.kb.index import build
    from es_faq.search.analyze import Analyzer
    from es_faq.search.embed import Embedder

    settings = load_settings()
    engine.up(settings, echo=lambda message: None)
    try:
        client = make_client(settings)
        alias = "drill-sigstop"
        if not client.indices.exists_alias(name=alias):
            build(client, settings, read_jsonl(REPO / "demo" / "faqs.jsonl"), Analyzer(settings), Embedder(settings),
                  alias=alias, progress=False)
        pid = int(provision.EngineLayout(settings.engine_path, settings.engine_version).pidfile.read_text().strip())
        with serve({"ES_FAQ_INDEX_ALIAS": alias}, Path("/tmp/es-faq-drill-sigstop.log")) as url:
            load = Clients(url, args.clients).start()
            done, health, ready = threading.Event(), [], []
            probes = [threading.Thread(target=prober, args=(url, path, done, into), daemon=True)
                      for path, into in (("/healthz", health), ("/readyz", ready))]
            for thread in probes:
                thread.start()
            time.sleep(args.before)
            stopped = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(args.stop)
            finally:
                resumed = time.monotonic()
                os.kill(pid, signal.SIGCONT)
            time.sleep(args.after)
            done.set()
            load.stop()
            ended = time.monotonic()

        def probes_in(rows, start, end):
            inside = [r for r in rows if start <= r[0] < end]
            statuses: dict = {}
            for _, status, _ in inside:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            return {"probes": len(inside), "statuses": statuses, "latency": summary([s for _, _, s in inside])}

        after_ok = [o for o in load.outcomes if o[0] >= resumed and o[2] == 200]
        emit({"clients": args.clients, "stop_s": args.stop, "search_timeout_s": settings.search_timeout_s,
              "before": load.phase(0, stopped), "hung": load.phase(stopped, resumed),
              "after": load.phase(resumed, ended),
              "first_200_after_resume_s": round(min(o[0] + o[1] for o in after_ok) - resumed, 2) if after_ok else None,
              "healthz_hung": probes_in(health, stopped, resumed), "readyz_hung": probes_in(ready, stopped, resumed)})
    finally:
        if not args.keep_node:
            engine.down(settings)


if __name__ == "__main__":
    main()
