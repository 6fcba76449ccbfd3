"""Stage: text -> L2-normalised vectors with an ONNX embedding model (sentence-transformers style)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import numpy as np

from ..config.settings import Settings
from ..errors import ModelError
from ..models.onnx import OnnxModel

# Files whose activation scales are set from the batch each run holds (dynamic INT8): a text's vector would
# depend on its batch-mates, so each text runs alone and its vector depends on the text only. A static-INT8 file
# fixes every scale at export and runs in batches.
RUN_ALONE = ("int8", "int8-dynamic")


class Embedder(OnnxModel):
    """`encode(texts)` hides tokenising, batching (or one text a run), padding, pooling and normalisation."""

    tasks = ("embedding", "base")

    def __init__(self, settings: Settings, name: str | None = None):
        self.dims = 0
        super().__init__(settings, name or settings.embed_model, settings.embed_max_tokens)

    @cached_property
    def runs_alone(self) -> bool:
        """Whether each text runs alone: the file that runs is the manifest's dynamic-INT8 one (RUN_ALONE; not an
        fp32 file beside it, which CUDA runs). Texts then run side by side, one a thread, instead of in batches;
        on 2 cores that embeds as many texts a second as batches of 32 did (docs/benchmarks.md, "The embedder in
        dynamic INT8, one text a run")."""
        files = self.manifest.files
        return self.manifest.data.get("quantization") in RUN_ALONE and (
            "model_int8" not in files or self.path.name == files["model_int8"]["path"])

    def _session_settings(self, settings: Settings) -> Settings:
        # One text is too little work to share among threads; texts share the cores instead (`encode`).
        return settings.replace(onnx_threads=1) if self.runs_alone else settings

    def _check_output(self) -> None:
        self.dims = int(self.manifest.dims)
        probe = self._vectors(["校验"])
        if probe.shape != (1, self.dims):
            raise ModelError(f"{self.manifest.name}: model gives vectors of shape {probe.shape[1:]}, "
                             f"manifest says {self.dims}")

    def _vectors(self, texts: list[str]) -> np.ndarray:
        hidden, mask = self._run(texts)
        if self.manifest.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # mean pooling over real tokens
            weights = mask[..., None].astype(hidden.dtype)
            pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        if self.manifest.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)

    def encode(self, texts: list[str], batch_size: int | None = None, is_query: bool = False) -> np.ndarray:
        """Vectors for `texts`, shape (len(texts), dims); queries get the model's instruction prefix."""
        if is_query and self.manifest.data.get("query_prefix"):
            texts = [self.manifest.query_prefix + t for t in texts]
        if self.runs_alone:
            threads = min(len(texts), self.settings.onnx_threads or os.cpu_count() or 1)
            if threads <= 1:
                return np.vstack([self._vectors([t]) for t in texts]) if texts else np.zeros((0, self.dims), np.float32)
            with ThreadPoolExecutor(threads) as pool:  # onnxruntime lets go of the GIL while it runs
                return np.vstack(list(pool.map(lambda t: self._vectors([t]), texts)))
        batch_size = batch_size or self.settings.embed_batch_size
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        # Sorting by length keeps padding (and so wasted compute) small within each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self._vectors([texts[i] for i in idx])
        return out
