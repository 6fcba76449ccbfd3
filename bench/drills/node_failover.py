#!/usr/bin/env python3
"""A node of a 3-node cluster dies under search load, then every node is restarted in turn.

    ES_FAQ_ES_URL=http://127.0.0.1:9221,http://127.0.0.1:9222,http://127.0.0.1:9223 \
    ES_FAQ_ENGINE_DIR=/var/lib/es-faq/h13 ES_FAQ_ENGINE_HEAP=384m \
    bench/drills/node_failover.py [--clients 4] [--shards 3] [--replicas 1] [--kill master|1|2|3]
        [--before 10] [--down 20] [--after 10] [--no-rolling] [--keep-cluster]

The cluster is started if it does not run (`es-faq engine up`, one node per URL) and given the demo
FAQs under the alias drill-failover (--shards primaries, --replicas copies). The load is `clients`
threads in this process, each sending es-faq's own hybrid request (retrieve.search_request, with
the demo queries analysed and embedded once) through es-faq's retrieve stage (retrieve.execute:
es-faq's client, every node listed or sniffed, the breaker, a partial result sent once more), one
after another, with search_timeout_s. A search fails when it raises, and is partial when shards
still failed after the retry (served marked `partial`, search_partial "serve").

Phase "kill": `kill -9` of one node (default: the elected master), --down seconds, `es-faq engine
up` restarts it, then until green. Phase "rolling": each node in turn is drained of its shards
(allocation exclude), stopped (SIGTERM), started, given its shards back, and the cluster waited
green; --no-drain instead follows the restart procedure of Elasticsearch's docs (replica
allocation off, flush, stop, start, allocation on), which leaves searches in flight on the
stopping node to fail. Prints JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from common import Workers  # noqa: E402

from es_faq.config.load import load_settings  # noqa: E402
from es_faq.config.settings import Settings  # noqa: E402
from es_faq.engine import local as engine  # noqa: E402
from es_faq.engine import provision  # noqa: E402
from es_faq.engine.client import make_client  # noqa: E402
from es_faq.kb.faq import read_jsonl  # noqa: E402
from es_faq.kb.index import build  # noqa: E402
from es_faq.search.analyze import Analyzer  # noqa: E402
from es_faq.search.embed import Embedder  # noqa: E402
from es_faq.search.retrieve import RetrievalQuery, execute, search_request  # noqa: E402

ALIAS = "drill-failover"


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


class SearchLoad(Workers):
    """`clients` threads searching `alias` back to back; every outcome kept as (sent, ms, error or None,
    sent twice for failed shards)."""

    def __init__(self, settings: Settings, alias: str, bodies: list[dict], clients: int = 4):
        self.settings, self.alias, self.bodies = settings, alias, bodies
        self.outcomes: list = []
        self.client = make_client(settings, timeout_s=settings.search_timeout_s)
        super().__init__(clients)
        self.clients = clients

    def work(self, i: int) -> None:
        n = i
        while not self._stop.is_set():
            body = self.bodies[n % len(self.bodies)]
            n += self.clients
            started = time.monotonic()
            error, retried = None, False
            try:
                shards = execute(self.client, self.settings, self.alias, body).shards
                retried = shards.retried
                if shards.partial:
                    error = f"partial: {shards.failed} of {shards.total} shards failed ({', '.join(shards.reasons)})"
            except Exception as exc:  # noqa: BLE001 -- every failure is counted, whatever it is
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.outcomes.append((started, (time.monotonic() - started) * 1000, error, retried))
            if error:
                # As a client told to come back later: refused at once by the breaker, a thread that
                # asked again without pause would spin and take the CPU the nodes need.
                time.sleep(0.25)

    def phase(self, start: float, end: float) -> dict:
        rows = [o for o in list(self.outcomes) if start <= o[0] < end]
        errors = [o[2] for o in rows if o[2]]  # the first few kinds, and the when of the first
        first = next((round(o[0] - start, 1) for o in rows if o[2]), None)
        ms = [o[1] for o in rows]
        return {"searches": len(rows), "failed": len(errors),
                "partial": sum(1 for e in errors if e.startswith("partial")),
                "whole_on_retry": sum(1 for o in rows if o[3] and not o[2]), "errors": sorted(set(errors))[:5],
                "first_failure_s": first,
                "p50_ms": percentile(ms, 0.5), "p99_ms": percentile(ms, 0.99), "max_ms": percentile(ms, 1.0)}


class HealthWatch:
    """Cluster health every half second (through every node), with the times its status changed."""

    def __init__(self, settings: Settings):
        self.client = make_client(settings, timeout_s=5)
        self.changes: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                health = self.client.cluster.health(timeout="2s")
                state = (health["status"], health["number_of_nodes"])
            except Exception:  # noqa: BLE001 -- no answer is itself a state to record
                state = ("no answer", 0)
            if not self.changes or self.changes[-1][1:] != state:
                self.changes.append((time.monotonic(), *state))
            time.sleep(0.5)

    def start(self) -> HealthWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def first(self, status: str, after: float) -> float | None:
        """Seconds after `after` until the status was first seen (None: not seen)."""
        return next((round(t - after, 1) for t, s, _ in self.changes if t >= after and s == status), None)

    def timeline(self, origin: float) -> list:
        return [[round(t - origin, 1), s, n] for t, s, n in self.changes]


def prepare(settings: Settings, shards: int, replicas: int, alias: str = ALIAS) -> list[dict]:
    """The cluster up, the demo FAQs under `alias`, and es-faq's hybrid request for each demo query."""
    engine.up(settings, echo=say)
    client = make_client(settings, timeout_s=60)
    analyzer, embedder = Analyzer(settings), Embedder(settings)
    own = settings.replace(index_shards=shards, index_replicas=replicas)
    build(client, own, read_jsonl(REPO / "demo" / "faqs.jsonl"), analyzer, embedder, alias=alias, progress=False)
    client.cluster.health(index=alias, wait_for_status="green", timeout="120s")
    bodies = []
    with (REPO / "demo" / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            analysis = analyzer.analyze(json.loads(line)["query"], expand=True)
            vector = embedder.encode([analysis.text or analysis.normalized], is_query=True)[0].tolist()
            query = RetrievalQuery(analysis.tokens, vector, settings.search_k, synonyms=analysis.expansions)
            bodies.append(search_request("hybrid", query, settings).to_dict())
    return bodies


def node_number(settings: Settings, which: str) -> int:
    """The node to kill: its number, or the elected master's."""
    if which != "master":
        return int(which)
    master = make_client(settings).cat.master(format="json").body[0]["node"]
    return int(master.rsplit("-", 1)[1])


def wait_green(settings: Settings, timeout_s: float = 300) -> None:
    health = make_client(settings, timeout_s=timeout_s + 10).cluster.health(
        wait_for_status="green", wait_for_nodes=f">={len(settings.es_urls)}", timeout=f"{int(timeout_s)}s")
    if health["timed_out"]:
        raise SystemExit(f"the cluster is not green after {timeout_s} s: {health['status']}")


def kill_phase(settings: Settings, load: SearchLoad, which: str, before: float, down: float, after: float) -> dict:
    """kill -9 one node under load, restart it after `down` seconds, wait for green."""
    watch = HealthWatch(settings).start()
    number = node_number(settings, which)
    time.sleep(before)
    killed = time.monotonic()
    engine.stop_node(provision.node_layout(settings, number), kill=True)
    say(f"killed es-faq-local-{number} (kill -9)")
    time.sleep(down)
    restarted = time.monotonic()
    engine.up(settings, echo=say)
    wait_green(settings)
    green = time.monotonic()
    say(f"green {green - killed:.1f} s after the kill")
    time.sleep(after)
    watch.stop()
    return {"killed_node": f"es-faq-local-{number}", "was_master": which == "master",
            "before": load.phase(killed - before, killed), "node_down": load.phase(killed, restarted),
            "restart_to_green": load.phase(restarted, green), "after": load.phase(green, green + after),
            "whole_failover": load.phase(killed, green),
            "seconds_to_yellow": watch.first("yellow", killed), "seconds_kill_to_green": round(green - killed, 1),
            "seconds_restart_to_green": round(green - restarted, 1), "health": watch.timeline(killed)}


def rolling_restart(settings: Settings, load: SearchLoad, drain: bool = True) -> dict:
    """`es-faq engine restart --rolling [--drain]` (engine.rolling_restart) under the load."""
    started = time.monotonic()
    report = engine.rolling_restart(settings, echo=say, drain=drain)
    return {**report, "all": load.phase(started, time.monotonic())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--kill", default="master", help="master, or a node number")
    parser.add_argument("--before", type=float, default=10)
    parser.add_argument("--down", type=float, default=20)
    parser.add_argument("--after", type=float, default=10)
    parser.add_argument("--search-timeout", type=float, default=None,
                        help="seconds a search may take (default: search_timeout_s, 2)")
    parser.add_argument("--no-kill", dest="kill_phase", action="store_false")
    parser.add_argument("--no-rolling", dest="rolling", action="store_false")
    parser.add_argument("--no-drain", dest="drain", action="store_false",
                        help="rolling restart without moving shards off first (allocation of replicas off, flush)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the nodes running at the end")
    args = parser.parse_args()
    settings = load_settings()
    if args.search_timeout:
        settings = settings.replace(search_timeout_s=args.search_timeout)
    if len(settings.es_urls) < 3:
        raise SystemExit("list the cluster's nodes in ES_FAQ_ES_URL (three URLs, comma-separated)")
    try:
        bodies = prepare(settings, args.shards, args.replicas)
        load = SearchLoad(settings, ALIAS, bodies, args.clients).start()
        report: dict = {"clients": args.clients, "shards": args.shards, "replicas": args.replicas,
                        "search_timeout_s": settings.search_timeout_s, "heap": settings.engine_heap,
                        "load_before": os.getloadavg()}
        if args.kill_phase:
            report["kill"] = kill_phase(settings, load, args.kill, args.before, args.down, args.after)
            say(json.dumps(report["kill"]))
        if args.rolling:
            report["rolling"] = rolling_restart(settings, load, args.drain)
        load.stop()
        report["load_after"] = os.getloadavg()
        print(json.dumps(report, indent=2, ensure_ascii=False))
    finally:
        if not args.keep_cluster:
            engine.down(settings)


if __name__ == "__main__":
    main()
