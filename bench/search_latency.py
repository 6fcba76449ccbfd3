"""In-process latency of the default search (k = search_k, search_mode, the decision), per stage.

    python bench/search_latency.py /tmp/atec-10k [--split test] [--limit 400]

Indexes the bench if needed (reused while unchanged), warms up, then runs each query once through
`Searcher.search` as the API does and prints p50/p95 of every stage's timings_ms as JSON. Set
ES_FAQ_DECIDE_DEPTH to compare the decision's cost (0: no cross-encoder).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.evaluation.bench import ensure_bench_index, load_queries
from es_faq.search.pipeline import Searcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    settings = load_settings()
    searcher = Searcher(settings)
    index = ensure_bench_index(searcher, args.bench, progress=False)
    queries = [row["query"] for row in load_queries(args.bench, args.split, args.limit)]
    for query in queries[:20]:
        searcher.search(query, index=index)
    timings: dict[str, list[float]] = {}
    for query in queries:
        for stage, ms in searcher.search(query, index=index).timings_ms.items():
            timings.setdefault(stage, []).append(ms)

    def pct(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)

    print(json.dumps({"bench": args.bench.name, "queries": len(queries), "k": settings.search_k,
                      "mode": settings.search_mode, "decide_depth": settings.decide_depth,
                      **{stage: {"p50": pct(v, 50), "p95": pct(v, 95)} for stage, v in timings.items()}}))


if __name__ == "__main__":
    main()
