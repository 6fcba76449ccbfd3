"""Embedding throughput and batch-dependence of the INT8 model, per batch size.

    .venv/bin/python bench/embed_batch.py --faqs ../shared/data/faq-bench/bq/faqs.jsonl --n 1024
"""

import argparse
import json
import time

from es_faq.config.load import load_settings
from es_faq.search.embed import Embedder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faqs", required=True)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    args = parser.parse_args()
    texts = [json.loads(line)["question"] for line in open(args.faqs, encoding="utf-8")][:args.n]
    embedder = Embedder(load_settings())
    embedder.encode(texts[:32])  # warm-up
    reference = None
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        started = time.perf_counter()
        vectors = embedder.encode(texts, batch_size=batch_size)
        seconds = time.perf_counter() - started
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(axis=1)
        print(json.dumps({"batch_size": batch_size, "texts": len(texts), "texts_per_s": round(len(texts) / seconds, 1),
                          "min_cos_vs_first": round(float(cosine.min()), 4),
                          "mean_cos_vs_first": round(float(cosine.mean()), 4)}))


if __name__ == "__main__":
    main()
