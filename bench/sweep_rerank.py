"""Sweep the rerank stage on a bench split (dev): depth and rerank_retrieval_weight.

    .venv/bin/python bench/sweep_rerank.py --bench ../shared/data/faq-bench/bq --split dev

The cross-encoder runs once per query over the deepest candidate list; every (depth, weight) point
is then scored from those logits, so the sweep costs one rerank pass. One JSON row per point.
"""

import argparse
import json
from pathlib import Path

from sweep_hybrid import _floats  # bench/ is on sys.path when a bench script runs

from es_faq.config.load import load_settings
from es_faq.evaluation.bench import ensure_bench_index, load_queries
from es_faq.search.pipeline import Searcher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--depths", default="5,10,20,30")
    parser.add_argument("--weights", default="0,1,2,5,10,20,50")
    args = parser.parse_args()
    settings = load_settings()
    searcher = Searcher(settings)
    alias = ensure_bench_index(searcher, args.bench)
    depths = [int(d) for d in args.depths.split(",")]
    rows = []
    for row in load_queries(args.bench, args.split):
        result = searcher.search(row["query"], max(depths), "hybrid", index=alias, matches=True)
        ids, fused = [h.faq_id for h in result.hits], [h.score for h in result.hits]
        reranked = searcher.reranker.rerank(result.analysis.text, result.hits)
        scored = {h.faq_id: h.scores["cross_encoder"] for h in reranked}
        rows.append((set(row["relevant"]), ids, fused, [scored[i] for i in ids]))
    for depth in depths:
        for weight in _floats(args.weights):
            top1 = mrr = 0.0
            for gold, ids, fused, logits in rows:
                head = sorted(range(min(depth, len(ids))), key=lambda i: -(logits[i] + weight * fused[i]))
                order = [ids[i] for i in head] + ids[depth:]
                rank = next((i for i, f in enumerate(order[:10], 1) if f in gold), None)
                top1 += rank == 1
                mrr += 1 / rank if rank else 0.0
            n = len(rows)
            print(json.dumps({"depth": depth, "rerank_retrieval_weight": weight, "model": settings.rerank_model,
                              "embedder": settings.embed_model, "queries": n,
                              "R@1": round(top1 / n, 4), "MRR@10": round(mrr / n, 4)}), flush=True)


if __name__ == "__main__":
    main()
