"""Stage: text -> L2-normalised vectors with an ONNX embedding model (sentence-transformers style)."""

from __future__ import annotations

import numpy as np

from .config import Settings
from .errors import ModelError
from .models import Manifest, ModelInfo, load_tokenizer, onnx_session, require


class Embedder(ModelInfo):
    """`encode(texts)` hides tokenising, batching, padding, pooling and normalisation."""

    def __init__(self, settings: Settings, name: str | None = None):
        self.manifest = Manifest.load(name or settings.embed_model)
        require(self.manifest, settings)
        self.settings = settings
        self.session = onnx_session(self.manifest.file(settings, "model"), settings)
        max_tokens = min(settings.embed_max_tokens, self.manifest.max_tokens)
        self.tokenizer = load_tokenizer(self.manifest.file(settings, "tokenizer"), max_tokens)
        self.dims = int(self.manifest.dims)
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._check_shapes()

    def _check_shapes(self) -> None:
        """A mismatched model or tokenizer fails here, not later as wrong scores."""
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ModelError(f"{self.manifest.name}: ONNX model lacks inputs {sorted(missing)}")
        vocab = self.tokenizer.get_vocab_size()
        probe = self._run(["校验"])
        if probe.shape != (1, self.dims):
            raise ModelError(f"{self.manifest.name}: model gives vectors of shape {probe.shape[1:]}, "
                             f"manifest says {self.dims}")
        try:
            self._run_ids(np.array([[vocab - 1]], dtype=np.int64))
        except Exception as exc:
            raise ModelError(f"{self.manifest.name}: tokenizer vocabulary ({vocab}) does not fit the model: {exc}") from None

    def _run_ids(self, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        mask = np.ones_like(ids) if mask is None else mask
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        if self.manifest.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # mean pooling over real tokens
            weights = mask[..., None].astype(hidden.dtype)
            pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        if self.manifest.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return self._run_ids(ids, mask)

    def encode(self, texts: list[str], batch_size: int | None = None, is_query: bool = False) -> np.ndarray:
        """Vectors for `texts`, shape (len(texts), dims); queries get the model's instruction prefix."""
        if is_query and self.manifest.data.get("query_prefix"):
            texts = [self.manifest.query_prefix + t for t in texts]
        batch_size = batch_size or self.settings.embed_batch_size
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        # Sorting by length keeps padding (and so wasted compute) small within each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self._run([texts[i] for i in idx])
        return out
