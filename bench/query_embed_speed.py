"""Query embedding speed, batch 1, one ONNX thread: embedders named on the command line, 300 seeded diac
queries, the median of alternating passes (docs/benchmarks.md, "Model speed and quantization"). With --dynamic, each
model whose fp32 export is in the model cache (a model trained here, right after `es-faq train embedder`)
is also timed as a dynamic-INT8 copy of the same weights (onnxruntime's quantize_dynamic, made in a
temporary folder), so the shipped static-INT8 file is compared with the alternative in one run. This VM's
speed drifts by 10-15% from pass to pass, so the two files are timed in alternating passes (`--rounds`,
default 10) and the median of each and of their per-round ratio reported. With --static, a static-INT8
copy in the layout exports write today (float MatMul outputs; calibrated as `es-faq models quantize` does)
is timed too, so a file shipped in the earlier layout (outputs quantized again) is compared with it. A
derived model's fp32 is its source's file (`bge-small-zh-v1.5-s8` from `bge-small-zh-v1.5`). With --fused, the
fp32 is first rewritten by onnxruntime's transformer optimizer (attention, skip layer norm, bias GELU and the
embedding layer fused into one node each) and then quantized dynamically, attention included (QAttention):
whether fewer, larger nodes run faster than what the session's own graph optimizer makes of the plain file.

    .venv/bin/python bench/query_embed_speed.py [--model bge-small-zh-v1.5-s8 --model embedder-zh] \
        [--dynamic] [--static] [--fused]
    .venv/bin/python bench/query_embed_speed.py --together --model embedder-zh-d --model embedder-zh
"""

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.models.manifest import Manifest
from es_faq.models.onnx import onnx_session
from es_faq.models.quantize import embedder_calibration, quantize, quantize_embedder
from es_faq.search.embed import Embedder


def fp32_file(settings, manifest: Manifest) -> Path | None:
    """The fp32 weights behind a shipped INT8 embedder: a trained model's export kept in the cache, or the
    file of the model it was derived from."""
    trained = settings.models_path / manifest.name / "model.onnx"
    if trained.exists():
        return trained
    source = manifest.source.get("derived", {}).get("from")
    return Manifest.load(source).file(settings, "model") if source else None


def static_copy(settings, manifest: Manifest, fp32: Path, out: Path) -> Path:
    """A static-INT8 copy of `fp32` in today's layout, calibrated as `es-faq models quantize` does by default."""
    bench = settings.bench_dir
    texts = embedder_calibration(manifest, [bench / "diac" / "faqs.jsonl", bench / "atec" / "faqs.jsonl"], 256, 13)
    return quantize_embedder(settings, manifest, fp32, out, texts)


def fused_copy(fp32: Path, out: Path) -> Path:
    """`fp32` with onnxruntime's BERT fusions (heads and width read from the graph), then dynamic INT8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    fused = out.with_name(out.stem + ".fp32.onnx")
    optimize_model(str(fp32), model_type="bert", num_heads=0, hidden_size=0).save_model_to_file(str(fused))
    # The fused nodes are in the com.microsoft domain, where shape inference gives no types: say they are float.
    quantize_dynamic(fused, out, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gather", "Attention", "EmbedLayerNormalization"],
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return out


def one_pass(embedder: Embedder, session, queries: list[str]) -> float:
    """Queries a second over one pass of `queries`, one at a time, with this ONNX session."""
    embedder.session = session
    started = time.perf_counter()
    for query in queries:
        embedder.encode([query], is_query=True)
    return len(queries) / (time.perf_counter() - started)


def alternating(embedder: Embedder, sessions: dict[str, object], queries: list[str], rounds: int) -> dict:
    """Each session timed in `rounds` passes, the sessions alternating within a round: the medians, and of
    each other session the median per-round ratio to the first."""
    for session in sessions.values():
        one_pass(embedder, session, queries[:20])  # warm-up
    passes: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            passes[name].append(one_pass(embedder, session, queries))
    first = next(iter(passes))
    return {"queries_per_s": {name: round(statistics.median(v), 1) for name, v in passes.items()},
            "range": {name: [round(min(v), 1), round(max(v), 1)] for name, v in passes.items()},
            "median_ratio_to_first": {
                name: round(statistics.median(a / b for a, b in zip(v, passes[first], strict=True)), 3)
                for name, v in passes.items() if name != first}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", dest="models", action="append", default=None)
    parser.add_argument("--dynamic", action="store_true", help="also time a dynamic-INT8 copy of each fp32 export")
    parser.add_argument("--static", action="store_true",
                        help="also time a static-INT8 copy with float MatMul outputs (today's layout)")
    parser.add_argument("--fused", action="store_true",
                        help="also time a dynamic-INT8 copy of the fp32 export after onnxruntime's BERT fusions")
    parser.add_argument("--together", action="store_true",
                        help="time the named models' shipped files against each other in one alternating run "
                             "(they must share the query prefix setting)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating passes of each file")
    args = parser.parse_args()
    settings = load_settings().replace(onnx_threads=1)
    with (settings.bench_dir / "diac" / "queries.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    queries = [r["query"] for r in random.Random(13).sample(rows, 300)]
    if args.together:
        embedders = [Embedder(settings, name) for name in args.models or ["embedder-zh-d", "embedder-zh"]]
        if len({e.manifest.data.get("query_prefix", "") for e in embedders}) > 1:
            raise SystemExit("--together times files on the same texts: the models' query prefixes differ")
        sessions = {f"{e.manifest.name} ({e.manifest.quantization})": e.session for e in embedders}
        load = os.getloadavg()[0]
        timed = alternating(embedders[0], sessions, queries, args.rounds)
        print(json.dumps({"models": [e.manifest.name for e in embedders], "rounds": args.rounds,
                          "load_at_start": load, **timed}, ensure_ascii=False), flush=True)
        return
    for name in args.models or ["bge-small-zh-v1.5-s8", "embedder-zh"]:
        embedder = Embedder(settings, name)
        sessions = {f"shipped ({embedder.manifest.quantization})": embedder.session}
        fp32 = fp32_file(settings, embedder.manifest)
        with tempfile.TemporaryDirectory() as tmp:
            if args.static and fp32:
                static = static_copy(settings, embedder.manifest, fp32, Path(tmp) / "static.onnx")
                sessions["static INT8, float MatMul outputs, of the same fp32 weights"] = onnx_session(static, settings)
            if args.dynamic and fp32:
                dynamic = quantize(fp32, Path(tmp) / "dynamic.onnx", "dynamic")
                sessions["dynamic INT8 of the same fp32 weights"] = onnx_session(dynamic, settings)
            if args.fused and fp32:
                fused = fused_copy(fp32, Path(tmp) / "fused.onnx")
                sessions["fused, then dynamic INT8, of the same fp32 weights"] = onnx_session(fused, settings)
            print(json.dumps({"model": name, "prefix": bool(embedder.manifest.data.get("query_prefix")),
                              "rounds": args.rounds, "load_at_start": os.getloadavg()[0],
                              **alternating(embedder, sessions, queries, args.rounds)}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
