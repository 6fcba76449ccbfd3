"""Cross-encoder speed in process: one query's candidates scored in one batched run (issue 11).

Record the candidates once from a live index (hybrid, the top --depth hits with their texts):
    .venv/bin/python bench/rerank_speed.py record bench-atec-10k ../shared/data/faq-bench/atec /tmp/rerank-pairs.jsonl
Then time them, on any machine (no Elasticsearch needed: the GPU one-shot runs this part):
    .venv/bin/python bench/rerank_speed.py time /tmp/rerank-pairs.jsonl --variant int8-static --texts 0
Prints p50/p95 ms per query, pairs per query and pairs/s, with the provider that ran it. Variants:
`int8-static` (the model's own INT8 file, in the layout it was exported with), and files bench/quantization.py
leaves in the model's cache folder: `int8-static-float-outputs`, `int8-static-int8-outputs` (the two static
layouts of `es_faq/models/quantize.py`, calibrated alike), `int8-dynamic`, `fp32`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.search.rerank import Reranker, candidate_texts

VARIANT_FILES = {"int8-static": None, "int8-static-float-outputs": "bench-int8-static.onnx",
                 "int8-static-int8-outputs": "bench-int8-static-int8-outputs.onnx",
                 "int8-dynamic": "bench-int8-dynamic.onnx", "fp32": "model.onnx"}


def record(alias: str, bench: Path, out: Path, depth: int, limit: int) -> None:
    from es_faq.evaluation.bench import load_queries
    from es_faq.search.pipeline import Searcher

    settings = replace(load_settings(), decide_depth=0)
    searcher = Searcher(settings)
    with out.open("w", encoding="utf-8") as fh:
        for row in load_queries(bench, "test", limit):
            result = searcher.search(row["query"], depth, "hybrid", index=alias)
            fh.write(json.dumps({"query": result.analysis.text,
                                 "candidates": [candidate_texts(h) for h in result.hits]}, ensure_ascii=False) + "\n")


def timed(pairs_file: Path, variant: str, texts: int, threads: int, repeat: int, batch_size: int | None) -> dict:
    settings = replace(load_settings(), rerank_texts=texts, onnx_threads=threads)
    if batch_size:
        settings = replace(settings, rerank_batch_size=batch_size)
    reranker = Reranker(settings)
    if VARIANT_FILES[variant]:
        from es_faq.models.onnx import onnx_session

        path = settings.models_path / reranker.manifest.name / VARIANT_FILES[variant]
        if not path.exists():
            raise SystemExit(f"{path} is missing: run bench/quantization.py {reranker.manifest.name} first")
        reranker.session = onnx_session(path, settings)
    rows = [json.loads(line) for line in pairs_file.read_text(encoding="utf-8").splitlines()]
    work = [(r["query"], [t for c in r["candidates"] for t in (c[:texts] if texts else c)]) for r in rows]
    for query, candidate in work[:10]:
        reranker.score(query, candidate)
    ms, pairs = [], 0
    for _ in range(repeat):
        for query, candidate in work:
            started = time.perf_counter()
            reranker.score(query, candidate)
            ms.append((time.perf_counter() - started) * 1000)
            pairs += len(candidate)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"variant": variant, "provider": reranker.session.get_providers()[0], "texts": texts or "all",
            "threads": threads, "batch_size": settings.rerank_batch_size, "queries": len(ms),
            "candidates": len(rows[0]["candidates"]),
            "pairs_per_query": round(pairs / len(ms), 1), "p50_ms": round(cuts[49], 1), "p95_ms": round(cuts[94], 1),
            "pairs_per_s": round(pairs / (sum(ms) / 1000), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("alias")
    rec.add_argument("bench", type=Path)
    rec.add_argument("out", type=Path)
    rec.add_argument("--depth", type=int, default=20)
    rec.add_argument("--limit", type=int, default=200)
    tim = sub.add_parser("time")
    tim.add_argument("pairs", type=Path)
    tim.add_argument("--variant", choices=sorted(VARIANT_FILES), default="int8-static")
    tim.add_argument("--texts", type=int, default=0, help="texts per candidate (0: all)")
    tim.add_argument("--threads", type=int, default=0, help="onnx_threads (0: onnxruntime decides)")
    tim.add_argument("--repeat", type=int, default=1)
    tim.add_argument("--batch-size", type=int, default=None, help="rerank_batch_size (default: the setting)")
    args = parser.parse_args()
    if args.command == "record":
        record(args.alias, args.bench, args.out, args.depth, args.limit)
    else:
        print(json.dumps(timed(args.pairs, args.variant, args.texts, args.threads, args.repeat, args.batch_size)))


if __name__ == "__main__":
    main()
