"""Weight-only quantization (onnxruntime's MatMulNBits: 4- or 8-bit weights in blocks, int8 compute) of the shipped
cross-encoder and embedder, against their shipped INT8 files: speed and closeness to fp32, one ONNX thread.

    python bench/weight_only.py reranker [--rounds 5] [--out bench/results/weight-only]
    python bench/weight_only.py embedder

The shipped weights are dequantized (es_faq/train/base.py) and exported to fp32 once (in OUT/work, not kept in
git); each MatMul is then quantized weight-only. reranker: batches of 6 (text, text) pairs from afqmc dev (about
what the decision reads a search); embedder: 300 diac queries, one at a time (the query path). Rounds alternate
the files; the ratio is the median per-round ratio to the shipped file. Needs the [train] extra."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from es_faq.config.load import load_settings
from es_faq.models.onnx import load_tokenizer, onnx_inputs, onnx_session
from es_faq.train.pairs import corpus_file, read_pairs

VARIANTS = [(4, 32), (4, 128), (8, 32), (8, 128)]  # (bits, block size); accuracy level 4: int8 compute
MODELS = {"reranker": ("reranker-zh", "reranker-zh", 80), "embedder": ("embedder-zh", "embedder-zh-d", 64)}
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def export(settings, source: str, task: str, work: Path) -> Path:
    """The shipped weights as an fp32 ONNX file (once)."""
    from transformers import BertForSequenceClassification, BertModel

    from es_faq.models.export import onnx_export
    from es_faq.train.base import load_trained

    fp32 = work / "onnx" / "model.onnx"
    if not fp32.exists():
        if task == "reranker":
            model, _ = load_trained(settings, source, BertForSequenceClassification, num_labels=1)
        else:
            model, _ = load_trained(settings, source, BertModel, task="embedding", add_pooling_layer=False)
        model.save_pretrained(work / "weights")
        onnx_export(work / "weights", work / "onnx", "text-classification" if task == "reranker"
                    else "feature-extraction", int8=False)
    return fp32


def weight_only(fp32: Path, bits: int, block: int) -> Path:
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    target = fp32.parent.parent / f"nbits{bits}-b{block}.onnx"
    if not target.exists():
        config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=4, bits=bits)
        quantizer = MatMulNBitsQuantizer(str(fp32), algo_config=config)
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(MODELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/weight-only"))
    args = parser.parse_args()
    settings = replace(load_settings(), onnx_threads=1)
    source, shipped, max_tokens = MODELS[args.task]
    work = args.out / "work" / source
    fp32 = export(settings, source, args.task, work)
    files = {"shipped INT8": settings.models_path / shipped / "model_int8.onnx", "fp32": fp32}
    files.update({f"{bits}-bit, block {block}": weight_only(fp32, bits, block) for bits, block in VARIANTS})
    rng = random.Random(7)
    tokenizer = load_tokenizer(settings.models_path / shipped / "tokenizer.json", max_tokens)
    if args.task == "reranker":
        pairs = rng.sample(read_pairs(corpus_file(SHARED / "pairs", "afqmc", "dev")), 600)
        feeds = [onnx_inputs(tokenizer, [(p.text1, p.text2) for p in pairs[i:i + 6]]) for i in range(0, 600, 6)]
    else:
        lines = (SHARED / "faq-bench" / "diac" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        feeds = [onnx_inputs(tokenizer, [json.loads(line)["query"]]) for line in rng.sample(lines, 300)]
    sessions = {name: onnx_session(path, settings) for name, path in files.items()}
    wanted = {i.name for i in sessions["fp32"].get_inputs()}
    feeds = [{k: v for k, v in feed.items() if k in wanted} for feed in feeds]

    def outputs(session) -> np.ndarray:
        if args.task == "reranker":
            return np.concatenate([session.run(None, feed)[0][:, 0] for feed in feeds])
        vectors = np.concatenate([session.run(None, feed)[0][:, 0, :] for feed in feeds])  # CLS, as es-faq pools
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    reference = outputs(sessions["fp32"])
    rows = {}
    for name, session in sessions.items():
        out = outputs(session)
        if args.task == "reranker":
            change = np.abs(out - reference)
            rows[name] = {"logit_change_mean": round(float(change.mean()), 4),
                          "logit_change_max": round(float(change.max()), 4)}
        else:
            cosine = (out * reference).sum(axis=1)
            rows[name] = {"cosine_to_fp32_mean": round(float(cosine.mean()), 5),
                          "cosine_to_fp32_min": round(float(cosine.min()), 5)}
        rows[name]["file_mb"] = round(files[name].stat().st_size / 2**20, 1)
    load = os.getloadavg()[0]
    rates: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            for feed in feeds:
                session.run(None, feed)
            rates[name].append(len(feeds) / (time.perf_counter() - start))
    unit = "batches of 6 pairs/s" if args.task == "reranker" else "queries/s"
    for name in sessions:
        rows[name].update({unit: round(statistics.median(rates[name]), 1),
                           "ratio_to_shipped": round(statistics.median(
                               a / b for a, b in zip(rates[name], rates["shipped INT8"], strict=True)), 3)})
    result = {"task": args.task, "load_at_start": round(load, 2), "rounds": args.rounds, "variants": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.task}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
