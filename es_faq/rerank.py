"""Stage: rerank the fused candidates with an ONNX cross-encoder (query, question) -> relevance logit.

A candidate FAQ is scored on each question text that matched it (its standard question plus the
best lexical and best vector question) and keeps its best score, as retrieval does.
"""

from __future__ import annotations

import numpy as np

from .config import Settings
from .errors import ModelError
from .models import OnnxModel
from .retrieve import Hit


def candidate_texts(hit: Hit) -> list[str]:
    """The question texts a hit is judged on: standard first, then the matched ones, no repeats."""
    texts = [hit.question, *(m.get("text") for m in hit.matched.values())]
    return list(dict.fromkeys(t for t in texts if t))


class Reranker(OnnxModel):
    """`score(query, texts)` and `rerank(query, hits)`; INT8 on CPU, fp32 where CUDA runs it."""

    tasks = ("reranker",)

    def __init__(self, settings: Settings, name: str | None = None):
        super().__init__(settings, name or settings.rerank_model, settings.rerank_max_tokens)

    def _check_output(self) -> None:
        logits, _ = self._run([("校验", "校验")])
        if logits.shape != (1, 1):
            raise ModelError(f"{self.manifest.name}: a reranker must give one logit per pair, "
                             f"this model gives shape {logits.shape[1:]}")

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        """One relevance logit per text (higher is better), in batches of rerank_batch_size."""
        size = self.settings.rerank_batch_size
        out = [self._run([(query, t) for t in texts[i:i + size]])[0][:, 0] for i in range(0, len(texts), size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def rerank(self, query: str, hits: list[Hit], retrieval_weight: float = 0.0) -> list[Hit]:
        """`hits` reordered. Each gets scores["cross_encoder"] (its best question's logit) and
        scores["rerank"] = that + retrieval_weight x its retrieval score, what it is ordered by: the
        retrieval score still carries evidence a small cross-encoder misses (docs/benchmarks.md)."""
        texts = [candidate_texts(h) for h in hits]
        flat = self.score(query, [t for group in texts for t in group])
        start = 0
        for hit, group in zip(hits, texts):
            logit = float(flat[start:start + len(group)].max())
            hit.scores["cross_encoder"] = round(logit, 4)
            hit.scores["rerank"] = round(logit + retrieval_weight * hit.score, 4)
            start += len(group)
        return sorted(hits, key=lambda h: -h.scores["rerank"])
