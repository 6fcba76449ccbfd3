"""Does the cross-encoder's 80-token limit hide what makes a pair differ? Pair ROC-AUC on a dev corpus with the
tokenizer truncating at each given length (the model's position embeddings reach 512).

    python bench/pair_length.py pawsx-zh 80 160 [--limit 800]

paws-x-zh's pairs are long (median 71 tokens, a third over 80), and its negatives differ by swapped words.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.metrics import roc_auc_score

from es_faq.config.load import load_settings
from es_faq.models.onnx import load_tokenizer
from es_faq.search.rerank import Reranker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("lengths", type=int, nargs="+")
    parser.add_argument("--limit", type=int, default=800, help="the first N dev pairs")
    args = parser.parse_args()
    settings = load_settings()
    path = settings.pairs_dir / args.corpus / "dev.tsv"
    rows = [line.rstrip("\n").split("\t") for line in path.open(encoding="utf-8")]
    pairs = [(r[0], r[1]) for r in rows if len(r) >= 3][:args.limit]
    labels = np.array([int(r[2]) for r in rows if len(r) >= 3][:args.limit])
    reranker = Reranker(settings)
    for length in args.lengths:
        reranker.tokenizer = load_tokenizer(reranker.manifest.file(settings, "tokenizer"), length)
        over = sum(len(reranker.tokenizer.encode(a, b).ids) >= length for a, b in pairs) / len(pairs)
        scores = np.concatenate([reranker.score_pairs(pairs[i:i + 32]) for i in range(0, len(pairs), 32)])
        print(json.dumps({"corpus": args.corpus, "model": settings.rerank_model, "max_tokens": length,
                          "pairs": len(pairs), "truncated": round(over, 3),
                          "roc_auc": round(float(roc_auc_score(labels, scores)) * 100, 1)}))


if __name__ == "__main__":
    main()
