"""Cost of the per-hit "matched question" inner hits: median ms of the Elasticsearch request alone.

    .venv/bin/python bench/inner_hits.py --index bench-bq --queries ../shared/data/faq-bench/bq/queries.jsonl
"""

import argparse
import json
import statistics
import time

from es_faq.config.load import load_settings
from es_faq.search.pipeline import Searcher
from es_faq.search.retrieve import build_request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()
    settings = load_settings()
    searcher = Searcher(settings)
    queries = [json.loads(line)["query"] for line in open(args.queries, encoding="utf-8")][:args.n]
    prepared = [(searcher.analyzer.analyze(q).tokens, searcher.embedder.encode([q], is_query=True)[0].tolist())
                for q in queries]
    for mode in ("bm25", "vector", "hybrid"):
        for k in (10, 50):
            for matches in (True, False):
                times = []
                for i, (tokens, vector) in enumerate(prepared * 2):
                    body = build_request(mode, tokens, vector, k, settings, matches=matches)
                    started = time.perf_counter()
                    searcher.client.search(index=args.index, **body)
                    if i >= len(prepared):  # first pass warms caches
                        times.append((time.perf_counter() - started) * 1000)
                print(json.dumps({"mode": mode, "k": k, "inner_hits": matches,
                                  "p50_ms": round(statistics.median(times), 1)}))


if __name__ == "__main__":
    main()
