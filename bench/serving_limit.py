"""The serving limit of this machine, and es-faq over HTTP as a share of it (issue 11).

In one run on one machine:
  1. the engine alone: the exact request bodies es-faq sends (vectors precomputed) replayed with
     wrk straight to Elasticsearch at saturation;
  2. each model stage alone at saturation, in as many processes as gunicorn has workers: the query
     embedder, and the cross-encoder on the candidates the default search gives it, in the orders each
     search's decision read them (one, or the reverse too in a second run: decide_order_band);
  3. es-faq over HTTP (`es-faq serve`, default settings, query log on) with wrk at each connection
     count, repeated.
The limit is the stages sharing the cores: 1 / (1/engine + 1/embed + 1/cross). Each HTTP run reports
req/s, its ratio to the limit, p50/p95/p99, errors and the CPU seconds of each process per second.

    .venv/bin/python bench/serving_limit.py --alias bench-atec-10k \
        --queries ../shared/data/faq-bench/atec/queries.jsonl --out bench/results/serving
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psutil

from es_faq.config.load import load_settings
from es_faq.search.pipeline import Searcher
from es_faq.search.rerank import DECISION_SIDES, candidate_texts

ROOT = Path(__file__).resolve().parent.parent
LOAD = ROOT / "bench" / "load"


def read_queries(path: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    test = [r["query"] for r in rows if r.get("split", "test") == "test"] or [r["query"] for r in rows]
    return test[:n]


def wrk(url: str, script: Path, args: list[str], connections: int, seconds: int, pids: dict[str, list[int]]) -> dict:
    """One wrk run; its JSON summary plus CPU seconds per second of each named process group."""
    procs = {name: [psutil.Process(p) for p in group] for name, group in pids.items()}
    before = {name: sum(_cpu(p) for p in group) for name, group in procs.items()}
    command = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
               "-s", str(script), url, "--", *args]
    started = time.monotonic()
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    wrk_proc = psutil.Process(runner.pid)
    wrk_cpu = 0.0
    while runner.poll() is None:
        try:
            wrk_cpu = _cpu(wrk_proc)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    out, _ = runner.communicate()
    wall = time.monotonic() - started
    summary = json.loads(out.strip().splitlines()[-1])
    cpu = {name: round((sum(_cpu(p) for p in group) - before[name]) / wall, 2) for name, group in procs.items()}
    cpu["wrk"] = round(wrk_cpu / wall, 2)
    return {**summary, "connections": connections, "cpu_per_s": cpu}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def stage_worker(stage: str, items: list, seconds: float, threads: int, queue) -> None:
    """Run one model stage on `items` round robin for `seconds`, as a serving worker would (its
    share of the cores as ONNX threads, as gunicorn_conf.py gives each worker)."""
    settings = load_settings().replace(onnx_threads=threads)
    searcher = Searcher(settings)
    done = 0
    if stage == "embed":
        model = searcher.embedder
        model.encode([items[0]], is_query=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            model.encode([items[done % len(items)]], is_query=True)
            done += 1
    else:
        verify(searcher, *items[0])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            verify(searcher, *items[done % len(items)])
            done += 1
    queue.put(done)


def verify(searcher: Searcher, query: str, texts: list[str], orders: int | None) -> None:
    """The cross-encoder's runs for one recorded search, as the service's decision ran them
    (pipeline.Searcher._decide): one order, the reverse in a second run where the search read it
    (decide_order_band), or both orders in one run (band 1)."""
    reranker = searcher.reranker
    if orders == 2 and searcher.settings.decide_order_band >= 1:
        reranker.score(query, texts)
        return
    reranker.score_ordered([(query, t) for t in texts])
    if orders == 2:
        reranker.score_ordered([(t, query) for t in texts])


def stage_rate(stage: str, items: list, workers: int, seconds: float) -> float:
    """Items per second with `workers` processes at saturation."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    threads = int(os.environ.get("ES_FAQ_ONNX_THREADS", "0")) or max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=stage_worker, args=(stage, items, seconds, threads, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    counts = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(counts) / seconds


def record(searcher: Searcher, alias: str, queries: list[str], folder: Path) -> tuple[Path, list]:
    """The engine requests of each query (as es-faq sends them) and the cross-encoder's inputs."""
    settings = searcher.settings
    lines, pairs = [], []
    for query in queries:
        result = searcher.search(query, matches=False)  # as the API sends it (no debug)
        body = result.request
        if settings.fusion == "sum":
            lines.append(f"POST\t/{alias}/_search\t{json.dumps(body, ensure_ascii=False)}")
        else:
            ndjson = "".join(json.dumps(x, ensure_ascii=False) + "\\n" for side in body.values() for x in ({}, side))
            lines.append(f"POST\t/{alias}/_msearch\t{ndjson}")
        head = result.hits[:settings.decide_depth]
        pairs.append((result.analysis.text, [t for h in head for t in candidate_texts(h, sides=DECISION_SIDES)],
                      result.decision.orders))
    path = folder / "engine-requests.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, [p for p in pairs if p[1]]


def serve(port: int, alias: str) -> tuple[subprocess.Popen, list[int]]:
    env = dict(os.environ, ES_FAQ_INDEX_ALIAS=alias)
    log = open(tempfile.gettempdir() + f"/es-faq-serving-limit-{port}.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "es-faq"), "serve", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    import urllib.request

    for _ in range(180):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        server.kill()
        raise SystemExit(f"es-faq serve did not become ready; see {log.name}")
    return server, [c.pid for c in psutil.Process(server.pid).children()]


def engine_pid(settings) -> int:
    port = settings.es_url.rsplit(":", 1)[-1].strip("/")
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == int(port) and conn.pid:
            return conn.pid
    raise SystemExit(f"no local process listens on {settings.es_url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--n", type=int, default=500, help="queries (the test split first)")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--stage-seconds", type=float, default=10)
    parser.add_argument("--connections", default="1,2,4,8,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--http-only", action="store_true",
                        help="Skip the engine and model stages (no limit, no ratio): to compare serving settings")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench/serving_limit.py drives the load with wrk: install it (as root: "
                         "bash -c 'source scripts/lib.sh && ensure_wrk'), then run it again")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    workers = int(os.environ.get("ES_FAQ_API_WORKERS", "0")) or os.cpu_count() or 1
    searcher = Searcher(replace(settings, index_alias=args.alias))
    queries = read_queries(args.queries, args.n)
    requests, pairs = record(searcher, args.alias, queries, args.out)
    es = {"engine": [engine_pid(settings)]}
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()}, "queries": len(queries),
                     "workers": workers, "settings": {k: getattr(settings, k) for k in (
                         "search_mode", "fusion", "decide_depth", "decide_order_band", "onnx_threads",
                         "query_log_enabled")}}
    # The share of searches whose decision read the leader's pairs both ways (the cross stage replays each so).
    results["cross_reverse_share"] = round(sum(p[2] == 2 for p in pairs) / len(pairs), 3) if pairs else None
    results["limit_rps"] = None
    if not args.http_only:
        engine = [wrk(settings.es_url, LOAD / "replay.lua", [str(requests)], c, args.seconds, es) for c in (8, 16)]
        results["engine"] = engine
        results["embed_qps"] = round(stage_rate("embed", queries, workers, args.stage_seconds), 1)
        results["cross_qps"] = round(stage_rate("cross", pairs, workers, args.stage_seconds), 1) \
            if settings.decide_depth else None
        engine_rps = max(r["rps"] for r in engine)
        inverse = 1 / engine_rps + 1 / results["embed_qps"] + (1 / results["cross_qps"] if results["cross_qps"] else 0)
        results["limit_rps"] = round(1 / inverse, 1)
        print(json.dumps({k: results[k] for k in ("engine", "embed_qps", "cross_qps", "cross_reverse_share",
                                                   "limit_rps")}), flush=True)
    server, worker_pids = serve(args.port, args.alias)
    pids = {**es, "workers": worker_pids}
    url = f"http://127.0.0.1:{args.port}"
    queries_file = args.out / "queries.jsonl"
    queries_file.write_text("".join(json.dumps({"query": q}, ensure_ascii=False) + "\n" for q in queries))
    try:
        wrk(url, LOAD / "search.lua", [str(queries_file), "10"], 2, 5, pids)  # warm-up
        runs = []
        for repeat in range(args.repeats):
            for c in (int(x) for x in args.connections.split(",")):
                run = wrk(url, LOAD / "search.lua", [str(queries_file), "10"], c, args.seconds, pids)
                limit = results["limit_rps"]
                run.update(repeat=repeat, ratio=round(run["rps"] / limit, 3) if limit else None)
                runs.append(run)
                print(json.dumps(run), flush=True)
        results["http"] = runs
    finally:
        server.terminate()
        server.wait(30)
    results["machine"]["load_after"] = os.getloadavg()
    name = "serving-http.json" if args.http_only else "serving-limit.json"
    (args.out / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
