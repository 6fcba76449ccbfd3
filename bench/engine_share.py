"""What the hybrid request costs Elasticsearch, variant by variant (issue 20, "the engine's share").

    .venv/bin/python bench/engine_share.py bench-atec-10k /tmp/atec-10k/queries.jsonl [--limit 300] [--rounds 3]

Analyses and embeds the queries once, builds the default request of each (k = search_k, the decision's
match details), then sends every variant's requests in turn, round after round, and prints per variant
and round: the engine's CPU per search (user + system time of the nodes' processes from /proc, so the
nodes must run on this machine; their idle work included), the mean `took`, the client's wall time per
request, the JVM's young collections over the variant's requests (the heap they allocated), and how often
the top 1 / 3 / 10 FAQ ids equal the default's. Variants: without the inner hits that name the matched
questions (both sides, or one; the vector side's also as it fetched the text before), without counting
total hits, fewer kNN candidates, and a minimum_should_match on the lexical side.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.search.pipeline import Searcher
from es_faq.search.retrieve import MATCHED_SOURCE, RetrievalQuery, search_request


def _knn_sections(body: dict) -> list[dict]:
    """The body's kNN sections: the DSL writes one as a dict, several as a list."""
    return body.get("knn", []) if isinstance(body.get("knn"), list) else [body.get("knn", {})]


def _without_inner_hits(side: str) -> Callable[[dict], dict]:
    def change(body: dict) -> dict:
        body = copy.deepcopy(body)
        if side in ("vector", "both"):
            for knn in _knn_sections(body):
                knn.pop("inner_hits", None)
        if side in ("lexical", "both"):
            for must in body.get("query", {}).get("bool", {}).get("must", []):
                must.get("nested", {}).pop("inner_hits", None)
        return body
    return change


def _inner_hits_fetching_text(body: dict) -> dict:
    """The API's request as it was before the fifteenth session: the vector side's inner hit fetched the matched
    text from the FAQ's source itself, where now the hit's own `_source` carries every question's text."""
    body = _without_inner_hits("lexical")(body)
    body["_source"] = [field for field in body["_source"] if field != MATCHED_SOURCE]
    for knn in _knn_sections(body):
        if "inner_hits" in knn:
            knn["inner_hits"] = {**knn["inner_hits"], "_source": [MATCHED_SOURCE]}
    return body


def _minimum_should_match(value: str) -> Callable[[dict], dict]:
    def change(body: dict) -> dict:
        body = copy.deepcopy(body)

        def visit(node) -> None:
            if isinstance(node, dict):
                match = node.get("match", {}).get("questions.tokens")
                if isinstance(match, dict):
                    match["minimum_should_match"] = value
                for child in node.values():
                    visit(child)
            elif isinstance(node, list):
                for child in node:
                    visit(child)
        visit(body.get("query"))
        return body
    return change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alias")
    parser.add_argument("queries")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead, send N default requests with the profile API on and print how many FAQs "
                             "the lexical side matched and where the query phase's time went (median ms)")
    args = parser.parse_args()
    settings = replace(load_settings(), index_alias=args.alias, query_log_enabled=False)
    searcher = Searcher(settings)
    client = searcher.client
    texts = [json.loads(line)["query"] for line in open(args.queries, encoding="utf-8")][:args.limit]
    prepared = []
    for text in texts:
        analysis = searcher.analyzer.analyze(text, expand=True, corrector=searcher.corrector(args.alias))
        vector = searcher.embedder.encode([analysis.text], is_query=True)[0].tolist()
        prepared.append((analysis, vector))

    def bodies(knn_candidates: int | None = None) -> list[dict]:
        used = settings if knn_candidates is None else replace(settings, knn_num_candidates=knn_candidates)
        return [search_request("hybrid", RetrievalQuery(a.tokens, v, settings.search_k, None, True, a.expansions),
                               used).to_dict() for a, v in prepared]

    default = bodies()
    variants = {"default": default,
                "no inner hits": [_without_inner_hits("both")(b) for b in default],
                "vector inner hits only (the API's request)": [_without_inner_hits("lexical")(b) for b in default],
                "the same, the inner hit fetching the text (before)": [_inner_hits_fetching_text(b) for b in default],
                "lexical inner hits only": [_without_inner_hits("vector")(b) for b in default],
                "track_total_hits false": [{**b, "track_total_hits": False} for b in default],
                f"knn_num_candidates 100 (default {settings.knn_num_candidates})": bodies(100),
                "minimum_should_match 30%": [_minimum_should_match("30%")(b) for b in default]}

    # The nodes' processes, read from /proc (the node stats' CPU counter refreshes about once a second).
    pids = [node["process"]["id"] for node in client.nodes.info(metric="process")["nodes"].values()]
    ticks = os.sysconf("SC_CLK_TCK")

    def engine_cpu_ms() -> float:
        total = 0.0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) * 1000 / ticks  # utime + stime
        return total

    def young_collections() -> int:  # the heap the requests allocated, in young collections of the JVM
        stats = client.nodes.stats(metric="jvm")["nodes"].values()
        return sum(node["jvm"]["gc"]["collectors"]["young"]["collection_count"] for node in stats)

    def send(requests: list[dict]) -> tuple[list[list[str]], float, float]:
        ids, took, started = [], 0, time.perf_counter()
        for body in requests:
            response = client.search(index=args.alias, body=body)
            took += response["took"]
            ids.append([hit["_id"] for hit in response["hits"]["hits"]])
        return ids, took / len(requests), (time.perf_counter() - started) * 1000 / len(requests)

    if args.profile:
        profile(client, args.alias, default[:args.profile])
        return
    base, _, _ = send(default)  # warm-up, and the ids the variants are compared with
    for round_ in range(1, args.rounds + 1):
        for name, requests in variants.items():
            before, collections = engine_cpu_ms(), young_collections()
            ids, took, wall = send(requests)
            collections = young_collections() - collections
            cpu = (engine_cpu_ms() - before) / len(requests)

            same = {f"top{n}_same": round(sum(a[:n] == b[:n] for a, b in zip(base, ids, strict=True)) / len(ids), 4)
                    for n in (1, 3, 10)}
            print(json.dumps({"round": round_, "variant": name, "engine_cpu_ms": round(cpu, 2),
                              "took_ms": round(took, 2), "client_wall_ms": round(wall, 2), "young_gcs": collections,
                              **same},
                             ensure_ascii=False), flush=True)


def profile(client, alias: str, requests: list[dict]) -> None:
    """The profile API's view of the default request: the lexical side's matches and each part's time."""
    matches: list[int] = []
    parts: dict[str, list[float]] = {}

    def add(name: str, nanos: int) -> None:
        parts.setdefault(name, []).append(nanos / 1e6)

    for body in requests:
        response = client.search(index=alias, body={**body, "profile": True})
        for shard in response["profile"]["shards"]:
            for search in shard["searches"]:
                for query in search["query"]:
                    add(f"query: {query['type']}", query["time_in_nanos"])
                    for child in query.get("children", []):
                        add(f"query: {query['type']} > {child['type']}", child["time_in_nanos"])
                    nodes = [query]
                    while nodes:  # the nested BM25 query over the questions' tokens, wherever it sits
                        node = nodes.pop()
                        nodes += node.get("children", [])
                        if node["type"] == "ESToParentBlockJoinQuery" and "questions.tokens" in node["description"]:
                            matches.append(node["breakdown"]["score_count"])
            for knn in (shard.get("dfs") or {}).get("knn", []):
                add("dfs: knn", sum(q["time_in_nanos"] for q in knn.get("query", [])) + knn.get("rewrite_time", 0))
            if shard.get("fetch"):
                add("fetch", shard["fetch"]["time_in_nanos"])
                for child in shard["fetch"].get("children", []):
                    add(f"fetch > {child['type']}", child["time_in_nanos"])
    print(json.dumps({"requests": len(requests), "lexical_side_matches_median": statistics.median(matches) if matches
                      else None, "median_ms": {name: round(statistics.median(times), 3) for name, times in
                                               sorted(parts.items(), key=lambda kv: -statistics.median(kv[1]))}},
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
