"""INT8 copies of ONNX models with onnxruntime's quantizer, and deriving a shippable static-INT8 model.

`static` fixes every activation scale from calibration inputs, so a text's vector (or a pair's
logit) is the same alone or in any batch: indexing can batch, and the index does not depend on how
it was built. `dynamic` computes the scales per run from the whole batch, so batch-mates change the
result (docs/benchmarks.md, "The embedder: static INT8").
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..config.settings import Settings
from ..errors import ModelError
from .files import sha256_of
from .manifest import MANIFEST_DIR, Manifest, pull
from .onnx import load_tokenizer, onnx_inputs

QUANTIZATIONS = ("static", "dynamic")
RANGES = ("minmax", "percentile")
# What a static MatMul hands on. "float": its inputs are quantized with the fixed scales, its output
# stays float, and onnxruntime runs it as one MatMulIntegerToFloat (an int8 GEMM with a float result).
# "int8" (the layout before 2026-12-05): the output is quantized again, onnxruntime runs QLinearMatMul
# and a DequantizeLinear after it, and the rounding of every output adds error. Both are batch-independent;
# "float" is closer to fp32 and faster (docs/benchmarks.md, "Static INT8 with float outputs").
MATMUL_OUTPUTS = ("float", "int8")
# MatMul weights per channel, and the embedding table (Gather), which is most of a small BERT's bytes.
QUANTIZED_OPS = ["MatMul", "Gather"]
CALIBRATION_BATCH = 16


def layout(method: str) -> dict:
    """How `quantize(method=...)` lays a model out, for a training record."""
    return {"quantization": method, **({"matmul_outputs": MATMUL_OUTPUTS[0]} if method == "static" else {})}


class _Calibration:
    """onnxruntime's CalibrationDataReader over texts or (text, text) pairs, CALIBRATION_BATCH to a run."""

    def __init__(self, tokenizer, items: Sequence):
        self._batches = iter([items[i:i + CALIBRATION_BATCH] for i in range(0, len(items), CALIBRATION_BATCH)])
        self._tokenizer = tokenizer

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else onnx_inputs(self._tokenizer, list(batch))


def quantize(fp32: Path, out: Path, method: str, tokenizer=None, calibration: Sequence = (),
             ranges: str = "minmax", length: int = 64, matmul_outputs: str = "float") -> Path:
    """An INT8 copy of `fp32` at `out`; `static` needs the tokenizer and calibration texts or pairs.

    `ranges` is how static activation ranges are set: `minmax` (the shipped reranker-zh), or
    `percentile` (99.99th, which ignores rare outliers: bge-small-zh vectors at cosine 0.979 to
    fp32 against 0.964 with minmax; docs/benchmarks.md, "The embedder: static INT8"). Percentile
    histograms need inputs of one shape, so its calibration batches are padded to `length` tokens.
    `matmul_outputs` is what a static MatMul hands on (MATMUL_OUTPUTS)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    if method not in QUANTIZATIONS:
        raise ModelError(f"quantization {method!r}: choose {' or '.join(QUANTIZATIONS)}")
    if method == "dynamic":
        quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=QUANTIZED_OPS)
        return out
    if tokenizer is None or not calibration:
        raise ModelError("static quantization needs a tokenizer and calibration inputs")
    if ranges not in RANGES:
        raise ModelError(f"activation ranges {ranges!r}: choose {' or '.join(RANGES)}")
    if matmul_outputs not in MATMUL_OUTPUTS:
        raise ModelError(f"MatMul outputs {matmul_outputs!r}: choose {' or '.join(MATMUL_OUTPUTS)}")
    extra: dict = {"OpTypesToExcludeOutputQuantization": ["MatMul"]} if matmul_outputs == "float" else {}
    if ranges == "percentile":
        # The histograms stack every batch's outputs, so every batch must have one shape: whole batches only.
        if len(calibration) > CALIBRATION_BATCH:
            calibration = calibration[:len(calibration) // CALIBRATION_BATCH * CALIBRATION_BATCH]
        tokenizer.enable_truncation(length)
        tokenizer.enable_padding(length=length)
        options = {"calibrate_method": CalibrationMethod.Percentile,
                   "extra_options": {**extra, "CalibPercentile": 99.99}}
    else:
        options = {"calibrate_method": CalibrationMethod.MinMax, "extra_options": extra}
    prepared = out.with_name(out.stem + ".prepared.onnx")
    quant_pre_process(_with_opset(fp32, out.with_name(out.stem + ".opset.onnx")), prepared, skip_symbolic_shape=True)
    try:
        quantize_static(prepared, out, _Calibration(tokenizer, calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=QUANTIZED_OPS, **options)
    finally:
        prepared.unlink(missing_ok=True)
        out.with_name(out.stem + ".opset.onnx").unlink(missing_ok=True)
    return out


MIN_OPSET = 13  # per-channel DequantizeLinear (its `axis`) needs opset 13


def _with_opset(path: Path, converted: Path) -> Path:
    """`path`, or a copy at `converted` raised to MIN_OPSET (older exports, e.g. opset 11, cannot
    hold per-channel QDQ)."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if opset >= MIN_OPSET:
        return path
    onnx.save(version_converter.convert_version(model, MIN_OPSET), str(converted))
    return converted


def calibration_texts(paths: Sequence[Path], size: int, seed: int) -> list[str]:
    """A seeded sample of `size` question texts (standard and similar) from FAQ JSONL files."""
    texts: list[str] = []
    for path in paths:
        if not path.exists():
            raise ModelError(f"calibration file {path} does not exist")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                faq = json.loads(line)
                texts += [faq["question"], *faq.get("similar_questions", [])]
    texts = sorted(set(texts))
    if len(texts) < size:
        raise ModelError(f"{len(texts)} distinct questions in {', '.join(map(str, paths))}; need {size}")
    return random.Random(seed).sample(texts, size)


def embedder_calibration(manifest: Manifest, paths: Sequence[Path], size: int, seed: int) -> list[str]:
    """`calibration_texts` for an embedder: with a query prefix, half of them again with it, since queries
    reach the model that way."""
    texts = calibration_texts(list(paths), size, seed)
    if manifest.data.get("query_prefix"):
        texts = texts + [manifest.query_prefix + t for t in texts[: size // 2]]
    return texts


def quantize_embedder(settings: Settings, manifest: Manifest, fp32: Path, out: Path, texts: Sequence[str]) -> Path:
    """A static-INT8 copy of an embedder's fp32 file at `out`, with `manifest`'s tokenizer, percentile ranges."""
    tokenizer = load_tokenizer(manifest.file(settings, "tokenizer"),
                               min(settings.embed_max_tokens, manifest.max_tokens))
    return quantize(fp32, out, "static", tokenizer, texts, ranges="percentile", length=settings.embed_max_tokens)


def derive_static(settings: Settings, source: str, name: str, calibration: Sequence[Path], size: int = 256,
                  seed: int = 13) -> Path:
    """A static-INT8 copy of the fp32 model `source`, shipped as onnx_models/<name>/ with a manifest
    that pins its sha256 and records how it was made; `models pull <name>` then copies it."""
    base = Manifest.load(source)
    if base.data.get("quantization", "fp32") != "fp32":
        raise ModelError(f"{source} is already quantized ({base.quantization}); derive from an fp32 model")
    pull(base, settings)
    texts = embedder_calibration(base, calibration, size, seed)
    target = MANIFEST_DIR / name
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=target.parent) as tmp:
        model = quantize_embedder(settings, base, base.file(settings, "model"), Path(tmp) / "model_int8.onnx", texts)
        shutil.move(model, target / "model_int8.onnx")
    ship_derived(base, name, base.file(settings, "tokenizer"), **{
        "task": "embedding" if base.data.get("task") == "base" else base.data["task"],
        "description": f"{source} made static INT8 (QDQ, per-channel MatMul + "
                       "Gather, float MatMul outputs) by es-faq, so a vector does not depend on its batch-mates",
        "quantization": "int8-static",
        "source": {"repo": name, "derived": {"from": source, "method": "static", "ranges": "percentile 99.99",
                                             "ops": QUANTIZED_OPS, "matmul_outputs": "float",
                                             "calibration": [f"{p.parent.name}/{p.name}" for p in calibration],
                                             "calibration_texts": len(texts), "seed": seed}}})
    return target


def ship_derived(base: Manifest, name: str, tokenizer: Path, **fields) -> Manifest:
    """The manifest of a model made from `base` whose one file is onnx_models/<name>/model_int8.onnx: base's
    fields, `fields` over them, the tokenizer copied beside the model and both files pinned by sha256. Its one
    model file has role "model" (runtime_file runs it on CPU and CUDA alike)."""
    target = MANIFEST_DIR / name
    shutil.copy(tokenizer, target / "tokenizer.json")
    files = {"model": {"path": "model_int8.onnx", "sha256": sha256_of(target / "model_int8.onnx")},
             "tokenizer": {"path": "tokenizer.json", "sha256": sha256_of(target / "tokenizer.json")}}
    manifest = Manifest(name, {**{k: v for k, v in base.data.items() if k not in ("files", "source", "name")},
                               "name": name, **fields, "files": files})
    manifest.save()
    return manifest
