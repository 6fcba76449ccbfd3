"""Query embedding speed, batch 1, one ONNX thread: the previous default embedder (with its query prefix)
against embedder-zh (no prefix), 300 seeded diac queries, best of 3 passes (docs/benchmarks.md, "Model
speed and quantization").

    .venv/bin/python bench/query_embed_speed.py
"""

import json
import random
import time

from es_faq.config.load import load_settings
from es_faq.search.embed import Embedder


def main() -> None:
    settings = load_settings().replace(onnx_threads=1)
    with (settings.bench_dir / "diac" / "queries.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    queries = [r["query"] for r in random.Random(13).sample(rows, 300)]
    for name in ["bge-small-zh-v1.5-s8", "embedder-zh"]:
        embedder = Embedder(settings, name)
        for query in queries[:20]:  # warm-up
            embedder.encode([query], is_query=True)
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            for query in queries:
                embedder.encode([query], is_query=True)
            best = max(best, len(queries) / (time.perf_counter() - started))
        print(json.dumps({"model": name, "prefix": bool(embedder.manifest.data.get("query_prefix")),
                          "queries_per_s": round(best, 1)}))


if __name__ == "__main__":
    main()
