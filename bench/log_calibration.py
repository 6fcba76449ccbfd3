"""Calibrating the decision on a knowledge base's own query log, simulated on a bench's dev queries.

    python bench/log_calibration.py serve ../shared/data/faq-bench/diac bench-diac OUT
    python bench/log_calibration.py sample ../shared/data/faq-bench/diac bench-diac OUT/sample-1000 --sample 1000

`serve` sends every dev query through the real app (query log on, its own prefix `bench-querylog`, deleted first),
and gives the feedback a careful customer would on each search that showed something (a `no_match` shows nothing):
an answer whose FAQ is relevant, `helpful` on it, else `unhelpful` on it; a suggestion list (the first SUGGEST_DEPTH
hits) holding a relevant FAQ, `clicked` on the first such, else `unhelpful` on its first hit. It writes OUT/feedback:
a faq-bench labelled from that feedback alone (taken: a paraphrase of the FAQ; unhelpful: a near-miss of it).
`sample` runs `es-faq querylog bench` on that log and labels its rows as a person would, from the bench's own labels
(split "dev"). Calibrate each directory with `es-faq calibrate --bench DIR --split dev` (bench/log_calibration.sh)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from es_faq.api.app import create_app
from es_faq.config.load import load_settings
from es_faq.engine.client import make_client
from es_faq.evaluation.bench import load_queries
from es_faq.evaluation.calibrate import SUGGEST_DEPTH
from es_faq.kb.log_bench import log_bench, qid
from es_faq.search.normalize import normalize

PREFIX = "bench-querylog"
LABEL_KEYS = ("kind", "relevant", "near_miss")


def _settings(alias: str):
    return load_settings().replace(index_alias=alias, query_log_prefix=PREFIX)


def _write(directory: Path, faqs: Path, rows: list[dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "faqs.jsonl").write_bytes(faqs.read_bytes())
    (directory / "queries.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                              encoding="utf-8")


def serve(bench: Path, alias: str, out: Path) -> dict:
    settings = _settings(alias)
    client = make_client(settings)
    names = [row["index"] for row in client.cat.indices(index=f"{PREFIX}-*", format="json", h="index").body]
    if names:
        client.indices.delete(index=",".join(names))
    app = create_app(settings)
    web, querylog = app.test_client(), app.extensions["es_faq.querylog"]
    given: Counter = Counter()
    labelled: dict[str, dict] = {}
    queries = load_queries(bench, "dev")
    for n, row in enumerate(tqdm(queries, desc="serve", unit="q")):
        request_id = f"lc-{n}"
        response = web.post("/v1/search", json={"query": row["query"]}, headers={"X-Request-ID": request_id})
        if response.status_code != 200:
            sys.exit(f"search {row['qid']}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        body = response.get_json()
        action = body["decision"]["action"]
        shown = [h["faq_id"] for h in body["hits"]][:1 if action == "answer" else SUGGEST_DEPTH]
        if action == "no_match" or not shown:
            given["no feedback (no_match)"] += 1
            continue
        right = [f for f in shown if f in set(row["relevant"])]
        label = ("helpful" if action == "answer" else "clicked") if right else "unhelpful"
        given[f"{action}: {label}"] += 1
        web.post("/v1/feedback", json={"request_id": request_id, "faq_id": (right or shown)[0], "feedback": label})
        key = normalize(row["query"])
        labels = {"kind": "paraphrase", "relevant": [right[0]]} if right else \
            {"kind": "near_miss", "relevant": [], "near_miss": [shown[0]]}
        labelled.setdefault(key, {"qid": qid(key), "query": row["query"], "split": "dev", **labels})
        if n % 500 == 499 and not querylog.flush(60):
            sys.exit("the query log did not flush in 60 s")
    if not querylog.flush(60):
        sys.exit("the query log did not flush in 60 s")
    querylog.close()
    client.indices.refresh(index=f"{PREFIX}-*")
    rows = list(labelled.values())
    _write(out / "feedback", bench / "faqs.jsonl", rows)
    return {"queries": len(queries), "logged": client.count(index=f"{PREFIX}-*")["count"], "feedback": dict(given),
            "feedback_bench": dict(Counter(r["kind"] for r in rows))}


def sample(bench: Path, alias: str, out: Path, size: int, seed: int) -> dict:
    settings = _settings(alias)
    report = log_bench(make_client(settings), settings, out, since="1d", sample=size, seed=seed, progress=False)
    truth: dict[str, dict] = {}
    for row in load_queries(bench, "dev"):
        truth.setdefault(normalize(row["query"]), {k: row[k] for k in LABEL_KEYS if k in row})
    rows = [json.loads(line) for line in (out / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    labelled = [{**row, **truth[normalize(row["query"])], "split": "dev"} for row in rows]
    (out / "queries.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in labelled),
                                       encoding="utf-8")
    return {"log_bench": report, "labelled": dict(Counter(r.get("kind") for r in labelled))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["serve", "sample"])
    parser.add_argument("bench", type=Path)
    parser.add_argument("alias")
    parser.add_argument("out", type=Path)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = serve(args.bench, args.alias, args.out) if args.step == "serve" \
        else sample(args.bench, args.alias, args.out, args.sample, args.seed)
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
