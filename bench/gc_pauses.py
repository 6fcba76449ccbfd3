"""The cyclic garbage collector's pauses in a worker: the app built as a gunicorn worker builds it, then the
queries bench/serving_limit.py serves (the test split's first 500) served ROUNDS times through Flask's test client,
each collection timed (gc.callbacks).

    ES_FAQ_ONNX_THREADS=1 python bench/gc_pauses.py bench-atec-10k /tmp/atec-10k/queries.jsonl [--freeze] [--rounds 3]

With --freeze, the objects the app's build left are frozen out of the collector first, as the serving worker
does (gunicorn_conf.post_worker_init). A full (generation 2) collection walks every tracked object and stops
every thread of the process while it runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

from search_cpu import warmed_client  # bench/, the script's own folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("alias")
    parser.add_argument("queries", type=Path)
    parser.add_argument("--freeze", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client, queries = warmed_client(args.alias, args.queries)
    if args.freeze:
        gc.collect()
        gc.freeze()
    tracked = len(gc.get_objects())
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        else:
            pauses[info["generation"]].append((time.perf_counter() - started.pop()) * 1000)

    gc.callbacks.append(timer)
    begin = time.perf_counter()
    for _ in range(args.rounds):
        for query in queries:
            client.post("/v1/search", json={"query": query})
    n = args.rounds * len(queries)
    wall = time.perf_counter() - begin
    gc.callbacks.remove(timer)
    print(json.dumps({"freeze": args.freeze, "tracked_objects": tracked, "frozen": gc.get_freeze_count(),
                      "requests": n, "wall_ms_per_request": round(wall / n * 1000, 2),
                      **{f"gen{g}": {"collections": len(p), "total_ms": round(sum(p), 1),
                                     "longest_ms": round(max(p), 2) if p else None} for g, p in pauses.items()}}))


if __name__ == "__main__":
    main()
