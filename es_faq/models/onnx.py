"""Loading ONNX models with their tokenizers: the one way to open a session, and `OnnxModel`."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

import numpy as np

from ..config.settings import Settings
from ..errors import ModelError
from .manifest import Manifest, require

log = logging.getLogger("es_faq.models")


def runtime_file(manifest: Manifest, settings: Settings) -> Path:
    """The file to run: fp32 where CUDA runs it (when the model has it), else the INT8 copy if any."""
    on_gpu = execution_providers()[0] == "CUDAExecutionProvider"
    use_fp32 = "model" in manifest.files and (on_gpu or "model_int8" not in manifest.files)
    return manifest.file(settings, "model" if use_fp32 else "model_int8")


def execution_providers() -> list[str]:
    """CUDA when onnxruntime-gpu sees a GPU, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def onnx_session(path: Path, settings: Settings):
    """The one way to open an ONNX model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if settings.onnx_threads:
        options.intra_op_num_threads = settings.onnx_threads
    options.inter_op_num_threads = 1  # a BERT graph is a chain: nothing runs side by side
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.onnx_spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    wanted = execution_providers()
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own untyped errors on a bad file
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from None
    if session.get_providers()[0] != wanted[0]:
        # onnxruntime-gpu without a usable CUDA (driver, cuDNN) quietly runs on the CPU instead.
        log.warning("%s runs on %s, not %s: check the CUDA and cuDNN libraries onnxruntime-gpu needs "
                    "(docs/configuration.md, GPU)", path.name, session.get_providers()[0], wanted[0])
    return session


def load_tokenizer(path: Path, max_tokens: int):
    """The one way to open a model's tokenizer: truncation and padding set once here."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelError(f"cannot load tokenizer {path}: {exc}") from None
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding()
    return tokenizer


def onnx_inputs(tokenizer, items: list) -> dict[str, np.ndarray]:
    """A BERT model's inputs for texts or (text, text) pairs, padded as the tokenizer is set up."""
    encodings = tokenizer.encode_batch(items)
    return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}


class OnnxModel:
    """A manifest's ONNX model and tokenizer, loaded and checked once: the base of Embedder and Reranker.

    A file of the wrong kind, shape or vocabulary fails here with a clear ModelError, not later
    as wrong scores. Subclasses name their `tasks` and check their output in `_check_output`."""

    tasks: tuple[str, ...] = ()

    def __init__(self, settings: Settings, name: str, max_tokens: int):
        self.manifest = Manifest.load(name)
        task = self.manifest.data.get("task")
        if task not in self.tasks:
            raise ModelError(f"{name} is a {task} model; this needs a {' or '.join(self.tasks)} model")
        require(self.manifest, settings)
        self.settings = settings
        self.path = runtime_file(self.manifest, settings)
        self.session = onnx_session(self.path, self._session_settings(settings))
        self.tokenizer = load_tokenizer(self.manifest.file(settings, "tokenizer"),
                                        min(max_tokens, self.manifest.max_tokens))
        self._inputs = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ModelError(f"{name}: ONNX model lacks inputs {sorted(missing)}")
        self._check_output()
        vocab = self.tokenizer.get_vocab_size()
        ids = np.array([[vocab - 1]], dtype=np.int64)
        try:
            self._feed(ids, np.ones_like(ids), np.zeros_like(ids))
        except Exception as exc:
            raise ModelError(f"{name}: tokenizer vocabulary ({vocab}) does not fit the model: {exc}") from None

    def _check_output(self) -> None:
        raise NotImplementedError

    def _session_settings(self, settings: Settings) -> Settings:
        """The settings the ONNX session is opened with (a subclass may run one text per thread instead)."""
        return settings

    def _feed(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = types
        return self.session.run(None, feed)[0]

    def _run(self, items: list) -> tuple[np.ndarray, np.ndarray]:
        """The model's first output for texts or (text, text) pairs, and the attention mask."""
        inputs = onnx_inputs(self.tokenizer, items)
        return self._feed(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]), \
            inputs["attention_mask"]

    @cached_property
    def provider(self) -> str:
        return self.session.get_providers()[0]
