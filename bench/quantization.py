"""fp32 against dynamic and static INT8 for the cross-encoder: speed, accuracy and batch stability.

Static INT8 is measured in both layouts (`MATMUL_OUTPUTS`): float MatMul outputs (`int8-static`, what
exports write) and the earlier layout that quantizes them again (`int8-static-int8-outputs`).

    python bench/quantization.py reranker-zh [--pairs 2000]

Needs a finished run (`es-faq train reranker NAME`) and the [train] extra. Writes both INT8 files
next to the exported fp32 model in the cache, scores the same dev pairs with each, and prints one
JSON row per variant: pair accuracy and ROC-AUC on bq and afqmc dev samples (threshold 0 on the
logit) and how far its logits lie from fp32's (largest and mean absolute change), the largest change
of a pair's logit between scoring it alone and in a batch of 20 mixed pairs, and pairs/s at batch 1,
3 (the decision's head) and 20 (full reranking) on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from es_faq.config.load import load_settings
from es_faq.models.onnx import load_tokenizer, onnx_inputs, onnx_session
from es_faq.models.quantize import MATMUL_OUTPUTS, QUANTIZATIONS, quantize
from es_faq.train.cross_encoder import build_pairs
from es_faq.train.pair_eval import metrics
from es_faq.train.pairs import corpus_file, read_pairs


def run(session, tokenizer, pairs):
    return session.run(None, onnx_inputs(tokenizer, [(p.text1, p.text2) for p in pairs]))[0][:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--pairs", type=int, default=2000, help="dev pairs per corpus")
    args = parser.parse_args()
    settings = load_settings()
    model_dir = settings.models_path / args.name
    run_dir = settings.home / "train-runs" / args.name
    recipe = json.loads((run_dir / "recipe.json").read_text())
    tokenizer = load_tokenizer(model_dir / "tokenizer.json", recipe["max_tokens"])
    calibration = build_pairs(settings, recipe, run_dir, progress=False)
    calibration = [calibration[i] for i in np.random.default_rng(recipe["seed"]).choice(len(calibration), 512)]
    variants = {"fp32": model_dir / "model.onnx"}
    pairs = [(p.text1, p.text2) for p in calibration]
    for method in QUANTIZATIONS:
        variants[f"int8-{method}"] = quantize(model_dir / "model.onnx", model_dir / f"bench-int8-{method}.onnx",
                                              method, tokenizer, pairs)
    for outputs in MATMUL_OUTPUTS[1:]:
        name = f"int8-static-{outputs}-outputs"
        variants[name] = quantize(model_dir / "model.onnx", model_dir / f"bench-{name}.onnx", "static", tokenizer,
                                  pairs, matmul_outputs=outputs)
    dev = {c: read_pairs(corpus_file(settings.pairs_dir, c, "dev"), c, args.pairs, seed=11) for c in ("bq", "afqmc")}
    mixed = dev["bq"][:10] + dev["afqmc"][:10]
    reference: dict[str, np.ndarray] = {}  # fp32's logits, the first variant's
    for name, path in variants.items():
        session = onnx_session(path, settings)
        row: dict = {"variant": name, "file_mb": round(path.stat().st_size / 1e6, 1)}
        for corpus, pairs in dev.items():
            logits = np.concatenate([run(session, tokenizer, pairs[i:i + 64]) for i in range(0, len(pairs), 64)])
            m = metrics(logits, np.array([p.label for p in pairs]), 0.0)
            reference.setdefault(corpus, logits)
            row[corpus] = {"accuracy": m["accuracy"], "auc": m["auc"],
                           "max_change_from_fp32": round(float(np.abs(logits - reference[corpus]).max()), 3),
                           "mean_change_from_fp32": round(float(np.abs(logits - reference[corpus]).mean()), 4)}
        together = run(session, tokenizer, mixed)
        alone = np.array([run(session, tokenizer, [p])[0] for p in mixed])
        row["max_batch_change"] = float(np.abs(together - alone).max())
        for size in (1, 3, 20):
            batch = dev["bq"][:size]
            run(session, tokenizer, batch)
            started, n = time.perf_counter(), 0
            while time.perf_counter() - started < 3.0:
                run(session, tokenizer, batch)
                n += 1
            row[f"pairs_per_s_batch{size}"] = round(n * size / (time.perf_counter() - started), 1)
        print(json.dumps(row), flush=True)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                      "onnx_threads": settings.onnx_threads or "onnxruntime default"}))


if __name__ == "__main__":
    main()
