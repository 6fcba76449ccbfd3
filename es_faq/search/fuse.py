"""Stage: the lexical and vector ranked lists -> one list (reciprocal rank or normalised scores)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from .retrieve import Hit


def _min_max(hits: Sequence[Hit]) -> dict[str, float]:
    if not hits:
        return {}
    top, bottom = hits[0].score, hits[-1].score
    span = (top - bottom) or 1.0
    return {h.faq_id: (h.score - bottom) / span for h in hits}


def fuse(lists: Mapping[str, Sequence[Hit]], method: str, lexical_weight: float, rrf_k: int, k: int) -> list[Hit]:
    """Merge per-side lists (best first) into the top k; each hit keeps its per-side scores.

    rrf: sum over sides of weight / (rrf_k + rank). weighted: sum of weight x min-max-normalised
    score within each side's list. A FAQ missing from one side gets nothing from it."""
    weights = {"lexical": lexical_weight, "vector": 1.0 - lexical_weight}
    first: dict[str, Hit] = {}
    matched: dict[str, dict] = {}
    scores: dict[str, dict] = {}
    fused: dict[str, float] = {}
    for side, hits in lists.items():
        normalised = _min_max(hits) if method == "weighted" else {}
        for rank, hit in enumerate(hits, start=1):
            first.setdefault(hit.faq_id, hit)
            matched.setdefault(hit.faq_id, {}).update(hit.matched)
            scores.setdefault(hit.faq_id, dict(first[hit.faq_id].scores))[side] = hit.score
            part = 1.0 / (rrf_k + rank) if method == "rrf" else normalised[hit.faq_id]
            fused[hit.faq_id] = fused.get(hit.faq_id, 0.0) + weights[side] * part
    ranked = sorted(first, key=lambda faq_id: fused[faq_id], reverse=True)[:k]
    # New hits: the side lists stay as retrieval gave them (the debug stages show them unfused).
    return [replace(first[faq_id], score=fused[faq_id], matched=matched[faq_id],
                    scores={**scores[faq_id], "fused": fused[faq_id]}) for faq_id in ranked]
