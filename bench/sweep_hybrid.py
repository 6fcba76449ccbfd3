"""Sweep the hybrid fusion weights on a bench split (dev): one JSON row per setting.

    .venv/bin/python bench/sweep_hybrid.py --bench ../shared/data/faq-bench/bq --split dev
"""

import argparse
import json
from pathlib import Path

from es_faq.config import load_settings
from es_faq.evaluate import ensure_bench_index, evaluate, load_queries
from es_faq.pipeline import Searcher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--lexical-boosts", default="0.002,0.005,0.01,0.02,0.05,0.1")
    parser.add_argument("--knn-ks", default="50,100")
    args = parser.parse_args()
    base = load_settings()
    searcher = Searcher(base)
    alias = ensure_bench_index(searcher, args.bench)
    queries = load_queries(args.bench, args.split)
    for knn_k in (int(x) for x in args.knn_ks.split(",")):
        for boost in (float(x) for x in args.lexical_boosts.split(",")):
            searcher.settings = base.replace(lexical_boost=boost, knn_k=knn_k,
                                             knn_num_candidates=max(base.knn_num_candidates, 2 * knn_k))
            row = evaluate(searcher, args.bench, args.split, "hybrid", alias, queries)
            print(json.dumps({"lexical_boost": boost, "knn_k": knn_k, **row}), flush=True)


if __name__ == "__main__":
    main()
