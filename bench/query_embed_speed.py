"""Query embedding speed, batch 1, one ONNX thread: embedders named on the command line, 300 seeded diac
queries, best of 3 passes (docs/benchmarks.md, "Model speed and quantization"). With --dynamic, each
model whose fp32 export is in the model cache (a model trained here, right after `es-faq train embedder`)
is also timed as a dynamic-INT8 copy of the same weights (onnxruntime's quantize_dynamic, made in a
temporary folder), so the shipped static-INT8 file is compared with the alternative in one run.

    .venv/bin/python bench/query_embed_speed.py [--model bge-small-zh-v1.5-s8 --model embedder-zh] [--dynamic]
"""

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.models.onnx import onnx_session
from es_faq.models.quantize import quantize
from es_faq.search.embed import Embedder


def timed(embedder: Embedder, queries: list[str]) -> float:
    for query in queries[:20]:  # warm-up
        embedder.encode([query], is_query=True)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for query in queries:
            embedder.encode([query], is_query=True)
        best = max(best, len(queries) / (time.perf_counter() - started))
    return round(best, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", dest="models", action="append", default=None)
    parser.add_argument("--dynamic", action="store_true", help="also time a dynamic-INT8 copy of each fp32 export")
    args = parser.parse_args()
    settings = load_settings().replace(onnx_threads=1)
    with (settings.bench_dir / "diac" / "queries.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    queries = [r["query"] for r in random.Random(13).sample(rows, 300)]
    for name in args.models or ["bge-small-zh-v1.5-s8", "embedder-zh"]:
        embedder = Embedder(settings, name)
        prefix = bool(embedder.manifest.data.get("query_prefix"))
        print(json.dumps({"model": name, "file": "shipped", "quantization": embedder.manifest.quantization,
                          "prefix": prefix, "queries_per_s": timed(embedder, queries)}), flush=True)
        fp32 = settings.models_path / name / "model.onnx"  # a trained model's fp32 export, kept in the cache
        if args.dynamic and fp32.exists() and "model_int8" in embedder.manifest.files:
            with tempfile.TemporaryDirectory() as tmp:
                dynamic = quantize(fp32, Path(tmp) / "dynamic.onnx", "dynamic")
                embedder.session = onnx_session(dynamic, settings)
                print(json.dumps({"model": name, "file": "dynamic INT8 of the same fp32 weights",
                                  "prefix": prefix, "queries_per_s": timed(embedder, queries)}), flush=True)


if __name__ == "__main__":
    main()
