"""Stage: rerank the fused candidates with an ONNX cross-encoder (query, question) -> relevance logit.

A candidate FAQ is scored on each question text that matched it (its standard question plus the
best lexical and best vector question; the decision reads the vector side's alone) and keeps its best
score, as retrieval does.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..config.settings import Settings
from ..errors import ModelError
from ..models.onnx import OnnxModel, onnx_inputs
from .retrieve import MATCH_SIDES, Hit

# The sides whose best-matching question a hit is judged on: both (MATCH_SIDES) for reranking and the doctor;
# the vector side's alone for the decision, whose search then asks the engine for the vector side's match details only
# (the lexical side's best question adds a text to 0.7% of diac leaders and none of atec's, and its inner hits
# cost about 1 ms of the engine's CPU a search: docs/benchmarks.md, "The decision reads the vector side's match").
DECISION_SIDES = ("vector",)


def candidate_texts(hit: Hit, limit: int = 0, sides: tuple[str, ...] = MATCH_SIDES) -> list[str]:
    """The question texts a hit is judged on: standard first, then the matched ones of `sides`, no repeats;
    the first `limit` of them when limit > 0 (rerank_texts)."""
    texts = [hit.question, *(hit.matched[side].get("text") for side in sides if side in hit.matched)]
    unique = list(dict.fromkeys(t for t in texts if t))
    return unique[:limit] if limit > 0 else unique


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
        """One relevance logit per text (higher is better)."""
        return self.score_pairs([(query, t) for t in texts])

    def score_pairs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """One logit per (text, text) pair; with rerank_both_orders (the default) the mean of the logits of
        (a, b) and (b, a), all scored in one batched run: the model was never taught that the two orders
        mean the same, and their mean decides better than either (docs/benchmarks.md, "Both orders")."""
        if not self.settings.rerank_both_orders or not pairs:
            return self.score_ordered(pairs)
        both = self.score_ordered(pairs + [(b, a) for a, b in pairs])
        return (both[:len(pairs)] + both[len(pairs):]) / 2

    def score_ordered(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """One logit per (text, text) pair as ordered. Tokenised once, sorted by length and run in batches of
        rerank_batch_size, each padded only to its own longest pair: one query's candidates differ
        in length, and padding them all to the longest wasted a third of the work on diac
        (docs/benchmarks.md, "The cross-encoder: fewer, better-packed pairs"). The static-INT8 model
        scores a pair alike in any batch."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        inputs = onnx_inputs(self.tokenizer, pairs)
        lengths = inputs["attention_mask"].sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        out = np.empty(len(pairs), dtype=np.float32)
        size = self.settings.rerank_batch_size
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            width = int(lengths[rows].max())
            logits = self._feed(inputs["input_ids"][rows, :width], inputs["attention_mask"][rows, :width],
                                inputs["token_type_ids"][rows, :width])
            out[rows] = logits[:, 0]
        return out

    def score_hits(self, query: str, hits: list[Hit], sides: tuple[str, ...] = MATCH_SIDES) -> list[Hit]:
        """New hits, each with scores["cross_encoder"]: the best logit over its question texts (those
        matched on `sides`), all pairs of the query in one batched run."""
        texts = [candidate_texts(h, self.settings.rerank_texts, sides) for h in hits]
        return self.with_logits(hits, self.score(query, [t for group in texts for t in group]), sides)

    def text_logits(self, query: str, hits: list[Hit], reverse: bool = False,
                    sides: tuple[str, ...] = MATCH_SIDES) -> np.ndarray:
        """One order's logits, flat, one per candidate text of each hit: (query, text), or (text, query) with
        reverse. The decision reads the reverse only when the first order leaves it near a threshold."""
        texts = [t for h in hits for t in candidate_texts(h, self.settings.rerank_texts, sides)]
        return self.score_ordered([(t, query) if reverse else (query, t) for t in texts])

    def with_logits(self, hits: list[Hit], flat: np.ndarray, sides: tuple[str, ...] = MATCH_SIDES) -> list[Hit]:
        """New hits, each with scores["cross_encoder"]: the best of its candidate texts' logits in `flat` (one
        per text, in candidate_texts order, hit after hit)."""
        out, start = [], 0
        for hit in hits:
            count = len(candidate_texts(hit, self.settings.rerank_texts, sides))
            logit = round(float(flat[start:start + count].max()), 4)
            out.append(replace(hit, scores={**hit.scores, "cross_encoder": logit}))
            start += count
        return out

    def rerank(self, query: str, hits: list[Hit], retrieval_weight: float = 0.0) -> list[Hit]:
        """`hits` scored and reordered by scores["rerank"] = cross-encoder logit + retrieval_weight x
        the retrieval score: the retrieval score still carries evidence the cross-encoder misses."""
        scored = [replace(h, scores={**h.scores,
                                     "rerank": round(h.scores["cross_encoder"] + retrieval_weight * h.score, 4)})
                  for h in self.score_hits(query, hits)]
        return sorted(scored, key=lambda h: -h.scores["rerank"])
