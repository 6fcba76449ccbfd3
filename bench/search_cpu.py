"""Where a /v1/search request's CPU goes, without a profiler: the thread CPU time (time.thread_time) of each part.

    ES_FAQ_ONNX_THREADS=1 python bench/search_cpu.py bench-atec-10k /tmp/atec-10k/queries.jsonl [ROUNDS] [--alone]

Serves the queries bench/serving_limit.py serves (the test split's first 500) ROUNDS times (default 2) through the
real Flask app (test client: no sockets, no gunicorn), query log on, one ONNX thread as a serving worker of two
has, and prints the calling thread's CPU per request in each part of the path. cProfile
(bench/profile_search.py) names the functions but inflates pure-Python parts several times over; thread time
counts what the request itself ran. Parts nest: the app's whole request holds the search, which holds the
cross-encoder, the embedder, the engine call and the rest.

With --alone each round also runs the two models on the same inputs in tight loops of their own, in the same
thread (the query embedder on every query, then the cross-encoder on every search's recorded pairs, in the orders
its decision read them, as bench/serving_limit.py's stages do): the same code and inputs, with nothing else run
between two calls. What the models cost inside a request beyond that is what the rest of the request (the engine,
the other model, Python) costs them, e.g. in evicted caches.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import elastic_transport
import flask
import onnxruntime
from flask.testing import FlaskClient
from serving_limit import read_queries, record, verify  # bench/, the script's own folder

from es_faq.api.app import create_app
from es_faq.api.context import SEARCHER
from es_faq.config.load import load_settings
from es_faq.search import analyze, embed, pipeline, rerank

SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(function: Callable, part: str) -> Callable:
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[part] += time.thread_time() - started
            CALLS[part] += 1
    return run


# (owner, attribute, part); module functions are wrapped where pipeline.py looks them up.
PARTS = [(flask.Flask, "wsgi_app", "whole request (the app)"), (pipeline.Searcher, "search", "search"),
         (rerank.Reranker, "score_ordered", "cross-encoder"), (embed.Embedder, "encode", "query embedding"),
         (onnxruntime.InferenceSession, "run", "ONNX runs (both models)"),
         (pipeline, "execute", "engine call (client side)"),
         (elastic_transport.Transport, "perform_request", "of which the HTTP client"),
         (analyze.Analyzer, "analyze", "analysis (normalise, rewrite, segment, correct)"),
         (pipeline, "search_request", "request building (elasticsearch.dsl)"),
         (pipeline, "leader_differences", "differences"), (pipeline, "decide", "decision")]


def warmed_client(alias: str, queries_path: Path) -> tuple[FlaskClient, list[str]]:
    """The app built as a serving worker builds it, its first 30 searches served, and the queries
    bench/serving_limit.py serves (the test split's first 500)."""
    queries = read_queries(queries_path, 500)
    client = create_app(replace(load_settings(), index_alias=alias)).test_client()
    for query in queries[:30]:
        client.post("/v1/search", json={"query": query})
    return client, queries


def alone(searcher: pipeline.Searcher, queries: list[str], pairs: list) -> dict[str, float]:
    """Thread CPU ms a query of each model in a loop of its own (the inputs the requests gave it)."""
    started = time.thread_time()
    for query in queries:
        searcher.embedder.encode([query], is_query=True)
    embedded = time.thread_time()
    for item in pairs:
        verify(searcher, *item)
    return {"query embedding alone": round((embedded - started) / len(queries) * 1000, 3),
            # per query, as the request's part is (a query whose search read no pair costs nothing here)
            "cross-encoder alone": round((time.thread_time() - embedded) / len(queries) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("alias")
    parser.add_argument("queries", type=Path)
    parser.add_argument("rounds", type=int, nargs="?", default=2)
    parser.add_argument("--alone", action="store_true", help="also time each model in a loop of its own")
    args = parser.parse_args()
    for owner, name, part in PARTS:
        setattr(owner, name, timed(getattr(owner, name), part))
    client, queries = warmed_client(args.alias, args.queries)
    if args.alone:
        searcher = client.application.extensions[SEARCHER]  # the app's own models, the very sessions requests use
        with tempfile.TemporaryDirectory() as folder:
            pairs = record(searcher, args.alias, queries, Path(folder))[1]
    for _ in range(args.rounds):
        SPENT.clear()
        CALLS.clear()
        started, cpu = time.perf_counter(), time.thread_time()
        for query in queries:
            assert client.post("/v1/search", json={"query": query}).status_code == 200
        n = len(queries)
        wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
        row = {"requests": n, "wall_ms": round(wall / n * 1000, 2), "thread_cpu_ms": round(cpu / n * 1000, 2),
               **{part: round(SPENT[part] / n * 1000, 3) for _, _, part in PARTS}}
        if args.alone:
            row.update(alone(searcher, queries, pairs))
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
