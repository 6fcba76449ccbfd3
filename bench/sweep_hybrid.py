"""Sweep hybrid fusion settings on a bench split (dev): one JSON row per setting.

    .venv/bin/python bench/sweep_hybrid.py --bench ../shared/data/faq-bench/bq --split dev

ES_FAQ_EMBED_MODEL picks the embedder; ES_FAQ_DECIDE_DEPTH=0 skips the cross-encoder (recall does not need it).

fusion=sum sweeps lexical_boost (the engine adds the two scores); rrf and weighted sweep
lexical_weight (the project fuses the two lists of one _msearch).
"""

import argparse
import json
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.evaluation.bench import ensure_bench_index, load_queries
from es_faq.evaluation.evaluate import evaluate
from es_faq.search.pipeline import Searcher


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--fusions", default="sum,rrf,weighted")
    parser.add_argument("--lexical-boosts", default="0.002,0.005,0.01,0.02,0.05,0.1")
    parser.add_argument("--lexical-weights", default="0.1,0.2,0.3,0.4,0.5")
    parser.add_argument("--knn-k", type=int, default=None)
    args = parser.parse_args()
    base = load_settings()
    if args.knn_k:
        base = base.replace(knn_k=args.knn_k, knn_num_candidates=max(base.knn_num_candidates, 2 * args.knn_k))
    searcher = Searcher(base)
    alias = ensure_bench_index(searcher, args.bench)
    # Recall is measured on the queries with a gold FAQ: near-miss and no-match ones would only cost time.
    queries = [q for q in load_queries(args.bench, args.split) if q.get("relevant")]
    grid = []
    for fusion in args.fusions.split(","):
        if fusion == "sum":
            grid += [{"fusion": "sum", "lexical_boost": b} for b in _floats(args.lexical_boosts)]
        else:
            grid += [{"fusion": fusion, "lexical_weight": w} for w in _floats(args.lexical_weights)]
    for point in grid:
        searcher.settings = base.replace(**point)
        row, _ = evaluate(searcher, args.bench, args.split, "hybrid", alias, queries)
        print(json.dumps({**point, "knn_k": base.knn_k, **row}), flush=True)


if __name__ == "__main__":
    main()
