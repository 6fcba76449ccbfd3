"""The trainable starting point: bge-small-zh-v1.5's fp32 ONNX graph mapped back into a BERT model.

The ONNX export names every LayerNorm, bias and embedding after its module, but leaves the linear
weights anonymous (`onnx::MatMul_541`). Each such weight feeds one MatMul whose output goes to an Add
with a named bias (`...query.bias`), so the bias name says which module the weight belongs to. ONNX
stores `x @ W`; torch's Linear stores W transposed.
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
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weights = {name: value for name, value in init.items() if not name.startswith("onnx::")}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in init or not node.input[1].startswith("onnx::"):
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [i for n in adds for i in n.input if i.endswith(".bias") and i in init]
        if len(biases) != 1:
            raise ModelError(f"{path}: cannot tell which layer MatMul {node.name} belongs to")
        weights[biases[0][: -len("bias")] + "weight"] = init[node.input[1]].T.copy()
    return weights


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
