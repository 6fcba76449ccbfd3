"""`models export`: a Hugging Face model to ONNX (+ INT8) with optimum, where a hub or local copy exists."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from .files import sha256_of
from .manifest import Manifest


def onnx_export(source, output: Path, task: str, int8: bool) -> dict[str, Path]:
    """`source` (hub id or local checkpoint) to `output/model.onnx` with optimum, plus an INT8 copy
    (dynamic quantization, AVX2) as `model_int8`. task: feature-extraction or text-classification."""
    try:
        from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTModelForSequenceClassification, ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
    except ImportError:
        raise ModelError("model export needs the [train] extra (optimum, torch): "
                         "`pip install -e '.[train]'`, then run the command again") from None
    model_class = {"feature-extraction": ORTModelForFeatureExtraction,
                   "text-classification": ORTModelForSequenceClassification}[task]
    output.mkdir(parents=True, exist_ok=True)
    model = model_class.from_pretrained(source, export=True)
    model.save_pretrained(output)
    files = {"model": output / "model.onnx"}
    if int8:
        quantizer = ORTQuantizer.from_pretrained(output)
        quantizer.quantize(save_dir=output, quantization_config=AutoQuantizationConfig.avx2(is_static=False))
        files["model_int8"] = output / "model_quantized.onnx"
    return files


def export(model_id: str, output: Path, int8: bool, name: str | None = None) -> Path:
    """Export `model_id` (a hub id or a local directory) and write a manifest beside the models."""
    try:
        files = onnx_export(model_id, output, "feature-extraction", int8)
        from transformers import AutoConfig, AutoTokenizer

        AutoTokenizer.from_pretrained(model_id).save_pretrained(output)
        hidden_size = AutoConfig.from_pretrained(model_id).hidden_size
        model_file = files.get("model_int8", files["model"])
    except ModelError:
        raise
    except OSError as exc:
        raise ModelError(f"cannot export {model_id}: {exc}. The model must be on a reachable Hugging Face Hub "
                         "or in a local directory; this machine may have no hub access.") from None
    except Exception as exc:  # optimum and transformers raise many unrelated types
        raise ModelError(f"cannot export {model_id}: {type(exc).__name__}: {exc}") from None
    name = name or output.name
    manifest = {"name": name, "task": "embedding", "description": f"exported from {model_id}",
                "source": {"export": model_id},
                "files": {"model": {"path": model_file.name, "sha256": sha256_of(model_file)},
                          "tokenizer": {"path": "tokenizer.json", "sha256": sha256_of(output / "tokenizer.json")}},
                "dims": int(hidden_size), "pooling": "cls", "normalize": True,
                "quantization": "int8" if int8 else "fp32", "max_tokens": 512}
    Manifest(name, manifest).save()
    return output
