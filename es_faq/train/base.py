"""The trainable starting point: bge-small-zh-v1.5's fp32 ONNX graph mapped back into a BERT model.

The ONNX export names every LayerNorm, bias and embedding after its module, but leaves the linear
weights anonymous (`onnx::MatMul_541`). Each such weight feeds one MatMul whose output goes to an Add
with a named bias (`...query.bias`), so the bias name says which module the weight belongs to. ONNX
stores `x @ W`; torch's Linear stores W transposed.

A model es-faq trained and shipped INT8 (`onnx_models/`, only the quantized file) can be a starting point
too: each DequantizeLinear of a weight is undone into fp32 (`(q - zero_point) * scale`, per channel where
the scale is), so a later run continues from the shipped cross-encoder instead of from bge (`init`).
"""

from __future__ import annotations

import numpy as np

from ..config.settings import Settings
from ..errors import ModelError
from ..models.manifest import Manifest, pull

BASE_MODEL = "bge-small-zh-v1.5"


def _require_training_stack():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise ModelError("training needs the [train] extra: `pip install -e '.[train]'` "
                         "(torch and transformers), then run the command again") from None


def onnx_bert_weights(path) -> dict[str, np.ndarray]:
    """Named BERT weights (torch layout) from an exported BERT ONNX graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    stands_for = _dequantize(graph, init)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(stands_for.get(name, name), []).append(node)
    weights = {name: value for name, value in init.items()
               if not name.startswith(("onnx::", "/")) and not name.endswith(_QUANTIZED_PARTS)}
    for node in graph.node:
        weight = stands_for.get(node.input[1], node.input[1]) if len(node.input) > 1 else ""
        if node.op_type != "MatMul" or weight not in init or not weight.startswith("onnx::"):
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [stands_for.get(i, i) for n in adds for i in n.input]
        biases = [b for b in biases if b.endswith(".bias") and b in init]
        if len(biases) != 1 and node.name.endswith("/MatMul"):
            # A quantized graph puts a Quantize/Dequantize pair between MatMul and Add; optimum's node names
            # carry the module path ("/bert/encoder/layer.0/attention/self/query/MatMul").
            biases = [b for b in [node.name[1:-len("MatMul")].replace("/", ".") + "bias"] if b in init]
        if len(biases) != 1:
            raise ModelError(f"{path}: cannot tell which layer MatMul {node.name} belongs to")
        weights[biases[0][: -len("bias")] + "weight"] = init[weight].T.copy()
    return weights


_QUANTIZED_PARTS = ("_quantized", "_scale", "_zero_point")


def _dequantize(graph, init: dict[str, np.ndarray]) -> dict[str, str]:
    """Undo each DequantizeLinear of a quantized weight into `init` under the weight's own name; returns
    the name each such node's output stands for. Activations (inputs not all initializers) are left."""
    stands_for = {}
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type != "DequantizeLinear" or not all(i in init for i in inputs) \
                or not node.input[0].endswith("_quantized"):
            continue
        q = init[inputs[0]].astype(np.float32)
        scale = init[inputs[1]].astype(np.float32)
        zero = init[inputs[2]].astype(np.float32) if len(inputs) > 2 else np.zeros_like(scale)
        if scale.ndim == 1 and q.ndim > 1:  # per channel, along `axis`
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        name = inputs[0][: -len("_quantized")]
        init[name] = (q - zero) * scale
        stands_for[node.output[0]] = name
    return stands_for


def bert_config(weights: dict[str, np.ndarray], **extra):
    from transformers import BertConfig

    vocab, hidden = weights["embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=hidden // 64,
                      intermediate_size=weights["encoder.layer.0.intermediate.dense.weight"].shape[0],
                      max_position_embeddings=weights["embeddings.position_embeddings.weight"].shape[0],
                      type_vocab_size=weights["embeddings.token_type_embeddings.weight"].shape[0], **extra)


def load_base(settings: Settings, model_class, **config):
    """`model_class` (a transformers Bert* class) holding the base weights, plus the tokenizer file path.

    Every encoder weight must be found; heads the base lacks (pooler, classifier) start fresh.
    """
    _require_training_stack()
    import torch

    manifest = Manifest.load(BASE_MODEL)
    pull(manifest, settings)
    weights = onnx_bert_weights(manifest.file(settings, "model"))
    model = model_class(bert_config(weights, **config))
    state = {k: torch.tensor(np.array(v)) for k, v in weights.items()}
    # base_model is the BertModel inside a task model (or the model itself): only the heads stay fresh.
    missing, unexpected = model.base_model.load_state_dict(state, strict=False)
    encoder_missing = [k for k in missing if k.startswith(("encoder.", "embeddings."))]
    if encoder_missing or unexpected:
        raise ModelError(f"base weights do not fit {model_class.__name__}: missing {encoder_missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    return model, manifest.file(settings, "tokenizer")


TASK_NAMES = {"reranker": "a cross-encoder", "embedding": "an embedder"}


def load_trained(settings: Settings, name: str, model_class, task: str = "reranker", **config):
    """A model es-faq trained and shipped for `task` (its INT8 ONNX file, dequantized), heads included, so a
    run continues from it (`init`); plus the tokenizer file path."""
    _require_training_stack()
    import torch

    manifest = Manifest.load(name)
    if manifest.data.get("task") != task or "train" not in manifest.data.get("source", {}):
        raise ModelError(f"{name} is not {TASK_NAMES[task]} es-faq trained; `init` takes one that "
                         "`es-faq models list` shows with a training recipe (e.g. reranker-zh, embedder-zh)")
    pull(manifest, settings)
    role = "model" if "model" in manifest.data["files"] else "model_int8"
    weights = onnx_bert_weights(manifest.file(settings, role))
    # A task model's encoder sits under `bert.`; a bare encoder's weights are the encoder's own.
    base = {k[len("bert."):]: v for k, v in weights.items() if k.startswith("bert.")} or weights
    # A bare encoder shipped without its pooler is built without one (BertModel's add_pooling_layer).
    built = {"add_pooling_layer": config.pop("add_pooling_layer")} if "add_pooling_layer" in config else {}
    model = model_class(bert_config(base, **config), **built)
    # Every parameter must be found; the graph's other constants (shapes, masks) are not parameters.
    expected = dict(model.named_parameters())
    state = {k: torch.tensor(np.array(v)) for k, v in weights.items() if k in expected}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ModelError(f"{name}'s weights do not fit {model_class.__name__}: missing {missing[:3]}")
    model.load_state_dict(state, strict=False)
    return model, manifest.file(settings, "tokenizer")
