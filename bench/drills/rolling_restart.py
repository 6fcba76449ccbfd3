#!/usr/bin/env python3
"""`es-faq engine restart --rolling` of a 3-node cluster under search load: failed and partial searches.

    ES_FAQ_ES_URL=http://127.0.0.1:9221,http://127.0.0.1:9222,http://127.0.0.1:9223 \
    ES_FAQ_ENGINE_DIR=/var/lib/es-faq/h23 ES_FAQ_ENGINE_HEAP=512m ES_FAQ_DECIDE_DEPTH=0 \
    bench/drills/rolling_restart.py [--clients 8] [--before 10] [--after 10] [--drain] [--node N]
        [--search-timeout S] [--keep-cluster]

The cluster is started if it does not run and given the demo FAQs as drill-failover (3 primaries,
1 replica; node_failover.prepare). `clients` threads search it back to back through es-faq's
retrieve stage (node_failover.SearchLoad: the client retries a search on another node when its
node leaves, a partial result is sent once more). After --before seconds the command itself runs
(`python -m es_faq engine restart --rolling`, every node in turn, or --node N alone for a short
check); --after seconds of load follow. A search fails when it raises and is partial when shards
still failed after the retry. Prints JSON, with the load average when the drill starts
(`load_at_start`, before the cluster or the search load: the machine's quietness), once the search
load runs (`load_before`), and after."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from node_failover import ALIAS, REPO, SearchLoad, prepare, say  # noqa: E402

from es_faq.config.load import load_settings  # noqa: E402
from es_faq.engine import local as engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--before", type=float, default=10)
    parser.add_argument("--after", type=float, default=10)
    parser.add_argument("--drain", action="store_true", help="move each node's shards off before stopping it")
    parser.add_argument("--node", type=int, default=None, help="restart only this node (a short check)")
    parser.add_argument("--search-timeout", type=float, default=None)
    parser.add_argument("--keep-cluster", action="store_true")
    args = parser.parse_args()
    load_at_start = os.getloadavg()  # before the drill starts anything: the machine's quietness
    settings = load_settings()
    if args.search_timeout:
        settings = settings.replace(search_timeout_s=args.search_timeout)
    if len(settings.es_urls) < 3:
        raise SystemExit("list the cluster's nodes in ES_FAQ_ES_URL (three URLs, comma-separated)")
    try:
        bodies = prepare(settings, shards=3, replicas=1)
        load = SearchLoad(settings, ALIAS, bodies, args.clients).start()
        report: dict = {"clients": args.clients, "search_timeout_s": settings.search_timeout_s,
                        "heap": settings.engine_heap, "drain": args.drain, "load_at_start": load_at_start,
                        "load_before": os.getloadavg()}
        time.sleep(args.before)
        began = time.monotonic()
        command = [sys.executable, "-m", "es_faq", "engine", "restart", "--rolling"]
        command += ["--drain"] if args.drain else []
        command += ["--node", str(args.node)] if args.node else []
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "ES_FAQ_SEARCH_TIMEOUT_S": str(settings.search_timeout_s)})
        ended = time.monotonic()
        say(f"engine restart --rolling: exit {done.returncode} after {ended - began:.0f} s")
        time.sleep(args.after)
        load.stop()
        report.update(command=" ".join(command[1:]), exit=done.returncode,
                      restart=json.loads(done.stdout) if done.returncode == 0 else done.stderr[-2000:],
                      before=load.phase(began - args.before, began), rolling=load.phase(began, ended),
                      after=load.phase(ended, ended + args.after), load_after=os.getloadavg())
        print(json.dumps(report, indent=2, ensure_ascii=False))
    finally:
        if not args.keep_cluster:
            engine.down(settings)


if __name__ == "__main__":
    main()
