"""Stage: what to say. `answer` one FAQ, `suggest` the top few, or `no_match` (hand over to a person).

The thresholds apply to the score that orders the hits in `search_mode` (the cross-encoder's logit
in mode rerank, the fused score in hybrid) and are calibrated for that mode on a dev split
(`es-faq calibrate`). A search in another mode has scores on another scale, so it only suggests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import Settings
from .retrieve import Hit

ACTIONS = ("answer", "suggest", "no_match")


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    score: float | None = None  # the top rerank logit it was decided on
    margin: float | None = None  # over the runner-up

    def as_dict(self) -> dict:
        return asdict(self)


def ranking_score(hit: Hit) -> float:
    """The score a hit was ranked by: the cross-encoder's when it ran, else the retrieval score."""
    return hit.scores.get("rerank", hit.score)


def decide(hits: list[Hit], mode: str, settings: Settings) -> Decision:
    if not hits:
        return Decision("no_match", "no candidate FAQ")
    if mode != settings.search_mode:
        return Decision("suggest", f"thresholds are calibrated for mode {settings.search_mode}, not {mode}")
    top = round(ranking_score(hits[0]), 4)
    runner_up = ranking_score(hits[1]) if len(hits) > 1 else None
    margin = round(top - runner_up, 4) if runner_up is not None else None
    if top >= settings.answer_threshold and (margin is None or margin >= settings.answer_margin):
        return Decision("answer", f"score {top} >= answer_threshold {settings.answer_threshold}", top, margin)
    if top >= settings.suggest_threshold:
        return Decision("suggest", f"score {top} >= suggest_threshold {settings.suggest_threshold}", top, margin)
    return Decision("no_match", f"score {top} < suggest_threshold {settings.suggest_threshold}", top, margin)
