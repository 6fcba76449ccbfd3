"""Stage: what to say. `answer` one FAQ, `suggest` the top few, or `no_match` (hand over to a person).

The cross-encoder scores the top `decide_depth` candidates (query, question). The order stays the
retrieval's (the small cross-encoder ranks worse than hybrid retrieval, docs/benchmarks.md): it
verifies the first hit instead. A small model fitted by `es-faq calibrate` on dev splits (a logistic
regression, or gradient-boosted trees shipped as ONNX beside it) turns FEATURES into the probability
that the first hit answers the query: its cross-encoder logit
and margin over the best other logit, its retrieval score and margin over the runner-up (they
carry evidence the cross-encoder misses), and what differs between the query and the leader's
question closest to it (a number, a negation, an antonym, a time, the order of an asymmetric
relation, words only one side has: es_faq/search/differ.py), which the decision also names. The
probability is compared with the thresholds calibrated alongside it (onnx_models/<model>/decision.json).
Retrieval scores differ in scale between modes, so a calibration that uses them applies to searches of
the mode it was fitted in.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config.settings import Settings
from ..errors import ModelError
from ..models.manifest import MANIFEST_DIR, Manifest
from . import differ
from .retrieve import Hit

ACTIONS = ("answer", "suggest", "no_match")
BASE_FEATURES = ("pair_logit", "margin", "retrieval_score", "retrieval_margin")
# The embedder's own verdict: the vector side's score of the leader's best-matching question ((1 + cosine)
# / 2, from the search's inner hits: no extra work) and its margin over the others'.
VECTOR_FEATURES = ("vector_score", "vector_margin")
FEATURES = BASE_FEATURES + VECTOR_FEATURES + differ.FEATURES
RETRIEVAL_FEATURES = ("retrieval_score", "retrieval_margin", *VECTOR_FEATURES)
# What `es-faq calibrate` fits on by default: the cross-encoder's and the embedder's verdicts with their
# margins, and the retrieval margin; not the leader's retrieval score, whose BM25 part grows with the query's
# length and the knowledge base's IDF, so that a calibration fitted on diac carries to other knowledge bases
# (docs/benchmarks.md, "The embedder's verdict in the decision").
# No logit margin: with each pair scored in both orders the leader's logit alone decides as well (diac test
# coverage 0.626 against 0.627 with it), so the decision holds at decide_depth 1, a third of the pairs.
DEFAULT_FEATURES = ("pair_logit", "retrieval_margin", *VECTOR_FEATURES)
# What `es-faq calibrate --features` may fit on: everything; without the differences; the cross-encoder
# alone (mode-independent); the leader alone (decide_depth 1); the default.
FEATURE_SETS = (",".join(FEATURES), ",".join(BASE_FEATURES), "pair_logit,margin", "pair_logit,margin,retrieval_score",
                "pair_logit,retrieval_score,retrieval_margin", ",".join(("pair_logit", "margin", *differ.FEATURES)),
                ",".join(DEFAULT_FEATURES))
NO_RUNNER_UP_MARGIN = 10.0  # a lone candidate leads by a wide margin (logits rarely span more)
# The retrieval and vector margins are read over this many hits whatever decide_depth is (they cost nothing).
MARGIN_DEPTH = 3
# The settings that scale the retrieval features, by fusion: a calibration fitted with other values reads
# them wrongly (vector_boost scales the vector side's inner-hit scores too, lexical_boost the fused score).
SCORING = {"sum": ("lexical_boost", "vector_boost"), "rrf": ("lexical_weight", "rrf_k"),
           "weighted": ("lexical_weight",)}


def scoring(settings: Settings) -> dict:
    """What shapes the features, as `es-faq calibrate` records it in fitted_on.scoring: the fusion and the
    settings that scale its scores, and whether a pair's logit is the mean of both orders. (decide_depth,
    over which the logit margin is taken, is recorded beside it in fitted_on.)"""
    return {"fusion": settings.fusion, **{k: getattr(settings, k) for k in SCORING[settings.fusion]},
            "rerank_both_orders": settings.rerank_both_orders}


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    probability: float | None = None  # that the leading FAQ answers the query (calibrated)
    pair_score: float | None = None  # the leader's cross-encoder logit
    margin: float | None = None  # over the runner-up's logit
    differences: tuple[str, ...] = ()  # between the query and the leader's closest question ("a number: 3 vs 5")
    # Orders the cross-encoder read the leader's pairs in: 2 (both, averaged), 1 (one: P(right) was far from
    # both thresholds, decide_order_band, or rerank_both_orders is off); None when no cross-encoder ran.
    orders: int | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "differences": list(self.differences)}


# `es-faq calibrate` holds each false-answer bound on this one-sided upper confidence bound of the dev rate
# (`upper_rate`), not on the rate itself: the lowest threshold whose dev rate just meets a bound is one the dev
# sample's luck chose. Over 200 bootstrap resamples of diac dev, thresholds chosen on the rates broke a test bound
# in 26% (the shipped cross-encoder) and 55% (reranker-zh-s4a-f) of the resamples; at 0.9 in 1.5% and 3.5%, for
# 4.8 points of the shipped model's median test coverage (docs/benchmarks.md, "A calibration whose bounds hold").
DEFAULT_CONFIDENCE = 0.9
# The false-answer bounds `es-faq calibrate` holds by default: near-misses answered with the FAQ they only look
# like, and no-match queries answered at all.
NEAR_MISS_MAX = 0.05
NO_MATCH_MAX = 0.02


def fewest_queries(bound: float, confidence: float) -> int | None:
    """The fewest queries of a kind on which a false-answer `bound` (0-1) can hold at `confidence` (0-1; `upper_rate`
    in es_faq/evaluation/calibrate.py): with none of them answered, the Clopper-Pearson upper bound is
    1 - (1 - confidence)^(1/n). None where no number can (a bound of 0)."""
    if bound >= 1:
        return 0
    if bound <= 0:
        return None
    return math.ceil(math.log(1 - confidence) / math.log(1 - bound) - 1e-9)


LEARNERS = ("logistic", "trees")
TREES_FILE = "decision.onnx"


@dataclass(frozen=True)
class Calibration:
    """The fitted decision model and its thresholds, as `es-faq calibrate` writes them: a logistic regression
    (`coef`, `intercept`) or gradient-boosted trees (`trees`: an ONNX model, saved beside decision.json)."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    answer_threshold: float
    suggest_threshold: float
    fitted_on: dict
    learner: str = "logistic"
    trees: bytes | None = field(default=None, repr=False)
    # The pinned sha256 of the model's weights as loaded now (not saved): a calibration whose fitted_on
    # names other weights (a model retrained or shipped under the same name) does not apply.
    weights_sha256: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.learner not in LEARNERS or (self.learner == "trees") != (self.trees is not None):
            raise ModelError(f"a decision calibration is a logistic regression or trees with their ONNX model, "
                             f"not learner={self.learner!r} with{'' if self.trees else 'out'} trees")
        if self.trees is not None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # a few hundred small trees: one row takes tens of microseconds
            session = ort.InferenceSession(self.trees, options, providers=["CPUExecutionProvider"])
            object.__setattr__(self, "_session", session)
            object.__setattr__(self, "_input", session.get_inputs()[0].name)

    @classmethod
    def path(cls, model: str) -> Path:
        return MANIFEST_DIR / model / "decision.json"

    @classmethod
    def load(cls, model: str) -> Calibration:
        path = cls.path(model)
        if not path.exists():
            raise ModelError(f"{model} has no decision calibration ({path}); run `es-faq calibrate --write` "
                             "on a dev split (docs/training.md)")
        data = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(data.get("features", ()))
        learner = data.get("learner", "logistic")
        if not names or set(names) - set(FEATURES) or learner not in LEARNERS or \
                (learner == "logistic" and len(names) != len(data.get("coef", ()))):
            raise ModelError(f"{path} names features {list(names)} and learner {learner!r}; this version knows "
                             f"{list(FEATURES)} and {list(LEARNERS)}: run `es-faq calibrate --write` again")
        trees = None
        if learner == "trees":
            spec = data.get("trees") or {}
            trees_path = path.parent / str(spec.get("path", TREES_FILE))
            trees = trees_path.read_bytes() if trees_path.exists() else b""
            if hashlib.sha256(trees).hexdigest() != spec.get("sha256"):
                raise ModelError(f"{trees_path} is missing or is not the model {path} was written with (sha256 "
                                 f"differs): restore it from the repository or run `es-faq calibrate --write` again")
        return cls(names, tuple(data.get("coef", ())), data.get("intercept", 0.0), data["answer_threshold"],
                   data["suggest_threshold"], data.get("fitted_on", {}), learner, trees, _weights_sha256(path, model))

    def save(self, model: str) -> Path:
        path = self.path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k not in ("trees", "weights_sha256")}
        if self.trees is not None:
            (path.parent / TREES_FILE).write_bytes(self.trees)
            data["trees"] = {"path": TREES_FILE, "sha256": hashlib.sha256(self.trees).hexdigest()}
        elif (path.parent / TREES_FILE).exists():
            (path.parent / TREES_FILE).unlink()  # the trees of an earlier calibration would only mislead
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(the leader is right) for rows of FEATURES values, in this calibration's feature order."""
        if self.trees is None:
            return 1.0 / (1.0 + np.exp(-(rows @ np.array(self.coef) + self.intercept)))
        session = self._session  # type: ignore[attr-defined]
        return session.run(["probabilities"], {self._input: rows.astype(np.float32)})[0][:, 1].astype(float)  # type: ignore[attr-defined]

    def probability(self, values: dict[str, float]) -> float:
        """P(the leader is right) from a row of named features."""
        return float(self.probabilities(np.array([[values[name] for name in self.features]], dtype=float))[0])

    def mismatch(self, retrieval_mode: str, settings: Settings | None = None) -> str:
        """Why this calibration does not apply to searches of this mode with these settings ("" when it does):
        retrieval scores mean something else in another mode, or with another fusion or boost, and the logits
        with the pairs scored in other orders or the margin over another depth, than the ones it was fitted
        with (a calibration written before the fusion was recorded is checked on the mode alone)."""
        fitted_weights = self.fitted_on.get("weights_sha256")
        if fitted_weights and self.weights_sha256 and fitted_weights != self.weights_sha256:
            return (f"the decision was fitted on other weights of {self.fitted_on.get('model', 'this model')} "
                    f"(sha256 {fitted_weights[:12]}, not {self.weights_sha256[:12]})")
        uses_retrieval = bool(set(self.features) & set(RETRIEVAL_FEATURES))
        fitted = self.fitted_on.get("retrieval_mode", "hybrid")
        if uses_retrieval and fitted != retrieval_mode:
            return f"the decision is calibrated on {fitted} retrieval scores, not {retrieval_mode}"
        if settings is None:
            return ""
        # A calibration written before rerank_both_orders was recorded was fitted on one order.
        recorded = {"rerank_both_orders": False, **(self.fitted_on.get("scoring") or {})}
        checked = [k for k in recorded if k == "rerank_both_orders" or (uses_retrieval and retrieval_mode == "hybrid")]
        now = scoring(settings)
        changed = [f"{k} {now.get(k)} (fitted with {recorded[k]})" for k in checked if now.get(k) != recorded[k]]
        depth = self.fitted_on.get("decide_depth")
        if "margin" in self.features and depth is not None and depth != settings.decide_depth:
            changed.append(f"decide_depth {settings.decide_depth} (fitted with {depth})")
        return f"the decision is calibrated on other scores: {', '.join(changed)}" if changed else ""

    def applies_to(self, retrieval_mode: str, settings: Settings | None = None) -> bool:
        return not self.mismatch(retrieval_mode, settings)


def _weights_sha256(decision: Path, model: str) -> str | None:
    """The pinned weights of the model whose directory holds `decision` (None without a manifest beside it)."""
    manifest = decision.parent.parent / f"{model}.json"
    return Manifest(model, json.loads(manifest.read_text(encoding="utf-8"))).weights_sha256 \
        if manifest.exists() else None


def _margin(values: list[float]) -> float:
    return min(values[0] - max(values[1:]), NO_RUNNER_UP_MARGIN) if len(values) > 1 else NO_RUNNER_UP_MARGIN


def vector_score(hit: Hit) -> float:
    """The vector side's score of the hit's best-matching question; 0 (below any (1 + cosine) / 2) when the
    vector side did not find it."""
    score = hit.matched.get("vector", {}).get("score", hit.scores.get("vector"))
    return float(score) if score is not None else 0.0


def compared_text(hit: Hit, query: str) -> str:
    """The hit's question text the query is compared with: of those the cross-encoder read, the one sharing
    the most characters with the query. A near-miss imitates one question closely ("怎么关闭自动还款" /
    "怎么设置自动还款"), and that closest text is where its telling difference shows."""
    from .rerank import DECISION_SIDES, candidate_texts

    chars = set(query)
    texts = candidate_texts(hit, sides=DECISION_SIDES) or [hit.question]
    return max(texts, key=lambda t: (len(chars & set(t)) / max(1, len(chars | set(t))), t == hit.question))


def leader_differences(hits: list[Hit], query: str) -> list[differ.Difference]:
    """What differs between `query` and the leader's closest question (none without a leader)."""
    return differ.compare(query, compared_text(hits[0], query)) if hits else []


def features(hits: list[Hit], query: str, depth: int = 1,
             found: Sequence[differ.Difference] | None = None) -> dict[str, float]:
    """FEATURES of hits in ranked order whose first `depth` carry scores["cross_encoder"]: the leader's
    cross-encoder logit with its margin over the other scored hits', its retrieval and vector scores with their
    margins over the best of the others in the top MARGIN_DEPTH (each negative when the leader is not the best),
    and what differs between `query` (as analysed) and the leader's closest question (`found`, when the caller
    has read them: leader_differences)."""
    logits = [h.scores["cross_encoder"] for h in hits[:max(1, depth)]]
    top = hits[:MARGIN_DEPTH]
    scores = [h.score for h in top]
    vectors = [vector_score(h) for h in top]
    return {"pair_logit": logits[0], "margin": _margin(logits),
            "retrieval_score": scores[0], "retrieval_margin": _margin(scores),
            "vector_score": vectors[0], "vector_margin": _margin(vectors),
            **differ.features(query, compared_text(hits[0], query), found)}


def thresholds(settings: Settings, calibration: Calibration) -> tuple[float, float]:
    """Settings override the calibrated thresholds when set."""
    answer = calibration.answer_threshold if settings.answer_threshold is None else settings.answer_threshold
    suggest = calibration.suggest_threshold if settings.suggest_threshold is None else settings.suggest_threshold
    return answer, suggest


def near_a_threshold(decision: Decision, settings: Settings, calibration: Calibration) -> bool:
    """Whether P(right) from one order is within decide_order_band of a threshold, where reading the reverse
    order too could change the action (or there is no P(right) to go by)."""
    if decision.probability is None:
        return True
    band = settings.decide_order_band
    return any(abs(decision.probability - t) < band for t in thresholds(settings, calibration))


def decide(hits: list[Hit], depth: int, settings: Settings, calibration: Calibration | None,
           retrieval_mode: str = "hybrid", query: str = "",
           found: Sequence[differ.Difference] | None = None) -> Decision:
    """The action for hits in final order whose top `depth` carry scores["cross_encoder"]; `query` is the
    analysed query text the differences are read against (`found`: leader_differences, when already read)."""
    if not hits:
        return Decision("no_match", "no candidate FAQ")
    if depth == 0:
        return Decision("suggest", "the cross-encoder decision is off (decide_depth = 0): only suggest")
    found = leader_differences(hits, query) if found is None else found
    values = features(hits, query, depth, found)
    differences = tuple(d.describe() for d in found)
    veto = next((d for d in found if d.kind in settings.veto_kinds), None)

    # The logit margin means something only with a runner-up scored; alone (decide_depth 1) it is null.
    margin = round(values["margin"], 4) if len(hits[:depth]) > 1 else None

    def said(action: str, reason: str, probability: float | None = None) -> Decision:
        return Decision(action, reason, probability, round(values["pair_logit"], 4), margin, differences)

    if calibration is None:
        return said("suggest", f"{settings.rerank_model} has no decision calibration: only suggest "
                    "(run `es-faq calibrate --write`)")
    if why_not := calibration.mismatch(retrieval_mode, settings):
        return said("suggest", f"{why_not}: only suggest (run `es-faq calibrate --write` with these settings)")
    probability = calibration.probability(values)
    answer, suggest = thresholds(settings, calibration)
    p = round(probability, 4)
    # Why not: the most telling difference between the query and the leader's question.
    why = f"; the first hit {differences[0]}" if differences else ""
    if math.isfinite(answer) and probability >= answer:
        if veto:
            return said("suggest", f"P(right) {probability:.3f} >= answer_threshold {answer}, but the first hit "
                        f"{veto.describe()} (answer_veto)", p)
        return said("answer", f"P(right) {probability:.3f} >= answer_threshold {answer}", p)
    if probability >= suggest:
        return said("suggest", f"P(right) {probability:.3f} < answer_threshold {answer}{why}", p)
    return said("no_match", f"P(right) {probability:.3f} < suggest_threshold {suggest}{why}", p)
