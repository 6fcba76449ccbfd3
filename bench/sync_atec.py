"""Measure the MySQL sync on a faq-bench knowledge base (default: atec, 69k FAQs).

    ES_FAQ_ES_URL=http://127.0.0.1:9201 ES_FAQ_MYSQL_URL=mysql://esfaq:esfaq-test@127.0.0.1:3307/es_faq_test \\
        nice -n 10 .venv/bin/python bench/sync_atec.py [--kb PATH] [--edits 20]

Loads the KB into its own MariaDB database (es_faq_test_bench_<name>), runs a full sync with
timers around the read, analyse, embed and write stages, then a `--follow` process and the time
from a committed row change to the change being searchable. Prints one JSON object and writes it
to bench/out/sync_<name>.json. The timers wrap the real stages; nothing is simulated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pymysql

from es_faq.config.load import load_settings
from es_faq.config.settings import REPO_ROOT
from es_faq.engine.client import make_client
from es_faq.kb.faq import Faq, read_jsonl
from es_faq.search.analyze import Analyzer
from es_faq.search.embed import Embedder
from es_faq.search.pipeline import Searcher
from es_faq.sync import source as source_mod
from es_faq.sync.run import Sync

DEFAULT_KB = Path("/work/shared/data/faq-bench/atec/faqs.jsonl")


class Stopwatch:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class TimedAnalyzer(Analyzer):
    def __init__(self, settings, watch: Stopwatch):
        super().__init__(settings)
        self.watch = watch

    def analyze(self, text, max_chars=None):
        t0 = time.perf_counter()
        try:
            return super().analyze(text, max_chars)
        finally:
            self.watch.add("analyse", time.perf_counter() - t0)


class TimedEmbedder(Embedder):
    def __init__(self, settings, watch: Stopwatch):
        super().__init__(settings)
        self.watch = watch

    def encode(self, texts, batch_size=None, is_query=False):
        t0 = time.perf_counter()
        try:
            return super().encode(texts, batch_size, is_query)
        finally:
            self.watch.add("embed", time.perf_counter() - t0)


def timed_records(watch: Stopwatch):
    """Snapshot.records with the time spent producing each record (MySQL read + cleaning) counted."""
    original = source_mod.Snapshot.records

    def records(self):
        stream = original(self)
        while True:
            t0 = time.perf_counter()
            try:
                record = next(stream)
            except StopIteration:
                watch.add("read", time.perf_counter() - t0)
                return
            watch.add("read", time.perf_counter() - t0)
            yield record
    source_mod.Snapshot.records = records


def load_kb(base_url: str, kb: Path) -> tuple[str, dict]:
    """The KB in its own database, updated_at spread over the past (one second per row), reused if loaded."""
    url = urlparse(base_url)
    name = f"es_faq_test_bench_{kb.parent.name}".replace("-", "_")
    args = {"host": url.hostname, "port": url.port or 3306, "user": url.username, "password": url.password,
            "charset": "utf8mb4", "autocommit": True}
    faqs = [f for f in read_jsonl(kb) if isinstance(f, Faq)]
    with pymysql.connect(**args) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'faq'",
                    (name,))
        if cur.fetchone()[0]:
            cur.execute(f"SELECT COUNT(*) FROM {name}.faq")
            if cur.fetchone()[0] == len(faqs):
                return url._replace(path="/" + name).geturl(), {"rows": len(faqs), "load_s": None}
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        cur.execute(f"USE {name}")
        sql = (REPO_ROOT / "sql" / "schema.sql").read_text(encoding="utf-8")
        body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
        for statement in filter(None, (s.strip() for s in body.split(";"))):
            cur.execute(statement)
        started = time.perf_counter()
        for start in range(0, len(faqs), 2000):
            chunk = list(enumerate(faqs[start:start + 2000], start=start + 1))
            cur.executemany("INSERT INTO faq (id, question, answer, category) VALUES (%s, %s, %s, %s)",
                            [(i, f.question, f.answer, f.category) for i, f in chunk])
            cur.executemany("INSERT INTO faq_similar_question (faq_id, question) VALUES (%s, %s)",
                            [(i, s) for i, f in chunk for s in f.similar_questions])
        # An admin tool's rows carry their history: one second apart, ending an hour ago.
        cur.execute("UPDATE faq SET updated_at = NOW(3) - INTERVAL %s SECOND + INTERVAL id SECOND",
                    (len(faqs) + 3600,))
        load_s = round(time.perf_counter() - started, 1)
    return url._replace(path="/" + name).geturl(), {"rows": len(faqs), "load_s": load_s}


def follow_latency(settings, url: str, alias: str, edits: int, interval: float) -> dict:
    """Commit `edits` single-row changes one by one; time each until a search (BM25, the real path) finds it."""
    searcher = Searcher(settings)
    env = {**os.environ, "ES_FAQ_MYSQL_URL": url, "ES_FAQ_INDEX_ALIAS": alias}
    log = REPO_ROOT / "bench" / "out" / "sync_follow.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "es_faq", "sync", "incremental", "--follow", "--interval",
                             str(interval)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    parsed = urlparse(url)
    conn = pymysql.connect(host=parsed.hostname, port=parsed.port, user=parsed.username, password=parsed.password,
                           database=parsed.path.strip("/"), charset="utf8mb4", autocommit=True)
    latencies = []
    run = time.strftime("%H%M%S")  # new text on every run, even on a reused database
    try:
        for n in range(edits + 1):  # the first edit also loads the model in the follower: not counted
            faq_id = 1000 + n * 37
            text = f"基准测试{run}修改第{n}次的问题"
            time.sleep(random.uniform(0, interval))  # edits land anywhere in the follower's cycle
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute("UPDATE faq SET question = %s WHERE id = %s", (text, faq_id))
            while not any(h.faq_id == str(faq_id) and h.question == text
                          for h in searcher.search(text, 5, "bm25", index=alias, matches=False).hits):
                if time.perf_counter() - t0 > 300:
                    raise SystemExit(f"edit {n} not searchable after 300 s; see {log}")
                time.sleep(0.02)
            if n:
                latencies.append(time.perf_counter() - t0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        conn.close()
    latencies.sort()
    return {"interval_s": interval, "edits": len(latencies), "median_s": round(statistics.median(latencies), 2),
            "p90_s": round(latencies[int(0.9 * (len(latencies) - 1))], 2), "max_s": round(latencies[-1], 2)}


def one_shot(url: str, alias: str) -> dict:
    """A cron-style run for one changed row: process start, model load, write, exit."""
    parsed = urlparse(url)
    with pymysql.connect(host=parsed.hostname, port=parsed.port, user=parsed.username, password=parsed.password,
                         database=parsed.path.strip("/"), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("UPDATE faq SET answer = CONCAT(answer, '。') WHERE id = 7")
    env = {**os.environ, "ES_FAQ_MYSQL_URL": url, "ES_FAQ_INDEX_ALIAS": alias}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "es_faq", "sync", "incremental"], env=env, capture_output=True,
                         text=True, check=True)
    return {"wall_s": round(time.perf_counter() - t0, 2), "upserted": json.loads(out.stdout)["upserted"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=Path, default=DEFAULT_KB)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark index afterwards.")
    parser.add_argument("--again", action="store_true",
                        help="Run the full sync a second time with nothing changed (vectors from the cache).")
    args = parser.parse_args()
    settings = load_settings()
    name = args.kb.parent.name
    url, loaded = load_kb(settings.mysql_url, args.kb)
    alias = f"bench-sync-{name}"
    watch = Stopwatch()
    timed_records(watch)
    settings = settings.replace(mysql_url=url)
    sync = Sync(settings, alias=alias, analyzer=TimedAnalyzer(settings, watch), embedder=TimedEmbedder(settings, watch))
    report = sync.full(progress=True)
    total = report.seconds
    # analyse and embed run inside faq_documents; what is left of the wall time is write + verify + swap.
    stages = {k: round(v, 1) for k, v in watch.seconds.items()}
    stages["cache_write_verify_swap"] = round(total - sum(watch.seconds.values()), 1)
    again = None
    if args.again:
        repeat = sync.full(progress=True)
        again = {"wall_s": round(repeat.seconds, 1), "questions": repeat.extra["questions"],
                 "vectors_reused": repeat.extra["vectors_reused"], "vectors_embedded": repeat.extra["vectors_embedded"],
                 "questions_per_s": round(repeat.extra["questions"] / repeat.seconds, 1)}
    first_incremental = sync.incremental()
    result = {
        "kb": str(args.kb), "mysql": loaded, "cpus": os.cpu_count(),
        "full": {"wall_s": round(total, 1), "rows": report.extra["rows_read"], "questions": report.extra["questions"],
                 "rows_per_s": report.extra["rows_per_s"],
                 "vectors_reused": report.extra["vectors_reused"], "vectors_embedded": report.extra["vectors_embedded"],
                 "questions_per_s": round(report.extra["questions"] / total, 1), "skipped": len(report.skipped),
                 "stages_s": stages},
        "full_again_unchanged": again,
        "first_incremental_after_full": {"seconds": round(first_incremental.seconds, 2),
                                         "rows_rechecked": first_incremental.unchanged},
        "cron_one_shot": one_shot(url, alias),
        "follow_latency": follow_latency(settings, url, alias, args.edits, args.interval),
    }
    out = REPO_ROOT / "bench" / "out" / f"sync_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if not args.keep:  # the node refuses wildcard deletes: name each index
        client = make_client(settings)
        for index in client.indices.get(index=f"{alias}-*", expand_wildcards="all").body:
            client.indices.delete(index=index)


if __name__ == "__main__":
    main()
