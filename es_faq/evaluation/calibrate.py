"""The decision, measured and calibrated on a bench split: what each query's search would say.

`collect` runs every query once and records the leading FAQ and the decision features. A query is
a `paraphrase` (its FAQ is in the knowledge base), a `near_miss` (it only looks like the FAQ in
`near_miss`: answering with that FAQ is wrong) or a `no_match` (no FAQ answers it). Benches
without kinds hold paraphrases only; for calibration each of their queries is also run with its
gold FAQs hidden (`exclude`), which makes it a no-match.
`fit` is the small calibrated model (logistic regression on FEATURES; `fit_trees` the gradient-boosted
trees, as ONNX), `choose` the thresholds, `fitted` both, `outcomes` and `curve` what they do;
`calibrate` is the whole recipe of `es-faq calibrate`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..search.decide import (
    DEFAULT_CONFIDENCE,
    FEATURES,
    Calibration,
    compared_text,
    features,
    fewest_queries,
    scoring,
)
from ..search.differ import compare
from ..search.pipeline import Searcher
from .bench import KINDS

SUGGEST_DEPTH = 5  # a suggestion list shows this many FAQs
GRID = [round(i / 100, 2) for i in range(101)]


def collect(searcher: Searcher, index: str, queries: list[dict], mode: str, held_out: bool = False,
            depth: int = SUGGEST_DEPTH, progress: bool = True) -> list[dict]:
    """One row per query: its kind, the gold FAQ's rank, whether the leader is right, the decision's
    features, probability and action, and the search's latency."""
    rows = []
    depth = max(depth, SUGGEST_DEPTH, searcher.settings.decide_depth)
    label = "held out" if held_out else "searching"
    for row in tqdm(queries, desc=f"{label} ({mode})", unit="query", disable=not progress):
        gold = set(row["relevant"])
        started = time.perf_counter()
        result = searcher.search(row["query"], depth, mode, index=index, exclude=sorted(gold) if held_out else ())
        latency = (time.perf_counter() - started) * 1000
        hits = result.hits
        kind = "no_match" if held_out else row.get("kind", "paraphrase" if gold else "no_match")
        head = [h for h in hits[:searcher.settings.decide_depth] if "cross_encoder" in h.scores]
        top = hits[0].faq_id if hits else None
        rank = None if held_out else next((i for i, h in enumerate(hits, start=1) if h.faq_id in gold), None)
        kinds = [d.kind for d in compare(result.analysis.text, compared_text(head[0], result.analysis.text))] \
            if head else []
        rows.append({"kind": kind, "top": top, "right": rank == 1, "rank": rank,
                     "near_miss_hit": top in set(row.get("near_miss", ())),
                     "in_suggestions": rank is not None and rank <= SUGGEST_DEPTH,
                     "features": features(hits, result.analysis.text, len(head)) if head else None,
                     # The most telling kind of difference between the query and the leader's question.
                     "difference": (kinds or ["none"])[0] if head else None,
                     # Whether a difference of the answer_veto kinds stops an answer whatever P(right) says.
                     "vetoed": bool(set(kinds) & set(searcher.settings.veto_kinds)),
                     "probability": result.decision.probability, "action": result.decision.action,
                     "latency_ms": latency})
    return rows


def answers(row: dict, answer: float, key: str = "probability") -> bool:
    """Whether the decision answers this row at this threshold: P(right) reaches it and no veto stops it."""
    return row[key] is not None and row[key] >= answer and not row.get("vetoed")


def counts(row: dict, answer: float, key: str = "probability") -> bool:
    """Whether the row counts toward its kind's rate at this threshold: a paraphrase answered with its FAQ
    (coverage), a near-miss answered with its look-alike, a no-match answered at all (false answers)."""
    if not answers(row, answer, key):
        return False
    return row["right"] if row["kind"] == "paraphrase" else row["near_miss_hit"] if row["kind"] == "near_miss" \
        else True


def judged(row: dict) -> bool:
    """Whether answering this row with its leader is known right or wrong: a near-miss answered with
    some other FAQ may be right (it can be equivalent to another FAQ), so it is counted neither way."""
    return row["kind"] != "near_miss" or row["near_miss_hit"]


# The trees `--learner trees` fits: small, and in a form skl2onnx converts (it does not convert scikit-learn
# 1.9's histogram kind). Of the exact kinds tried, the most out-of-fold coverage on diac dev with today's
# search (bench/decision_learners.py, bench/results/rescore2/learners.txt).
TREES = {"max_depth": 3, "n_estimators": 200, "learning_rate": 0.05, "random_state": 13}
FOLDS = 5


def matrix(rows: list[dict], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The judged rows with features as (X, y: whether the leader is right), for a learner to fit."""
    data = [r for r in rows if r["features"] is not None and judged(r)]
    x = np.array([[r["features"][n] for n in names] for r in data], dtype=float).reshape(len(data), len(names))
    y = np.array([r["right"] for r in data], dtype=int)
    if len(set(y.tolist())) < 2:
        raise ValueError("calibration needs both right and wrong leaders; use a larger or more varied split")
    return x, y


def fit(rows: list[dict], names: tuple[str, ...] = FEATURES) -> tuple[tuple[float, ...], float]:
    """Logistic regression of "the leader is right" on the named features, over the judged rows."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=1000).fit(*matrix(rows, names))
    return tuple(float(c) for c in model.coef_[0]), float(model.intercept_[0])


def fit_trees(rows: list[dict], names: tuple[str, ...] = FEATURES) -> bytes:
    """Gradient-boosted trees (TREES) of "the leader is right" on the named features, over the judged rows,
    as an ONNX model (input X: float rows in `names` order; output `probabilities`)."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = matrix(rows, names)
    model = GradientBoostingClassifier(**TREES).fit(x, y)
    return to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False}).SerializeToString()


def learned(rows: list[dict], names: tuple[str, ...], learner: str) -> Calibration:
    """The decision model alone, thresholds not yet chosen."""
    if learner == "trees":
        return Calibration(names, (), 0.0, 0.5, 0.5, {}, "trees", fit_trees(rows, names))
    coef, intercept = fit(rows, names)
    return Calibration(names, coef, intercept, 0.5, 0.5, {})


def out_of_fold(rows: list[dict], names: tuple[str, ...], learner: str, folds: int = FOLDS) -> list[dict]:
    """Each row with the probability of the model fitted on the other folds (folds interleave in the rows'
    order): what the decision would say of queries it was not fitted on."""
    out: list[dict] = list(rows)
    for k in range(folds):
        held = list(range(k, len(rows), folds))
        model = learned([r for i, r in enumerate(rows) if i % folds != k], names, learner)
        for i, row in zip(held, with_probabilities([rows[i] for i in held], model), strict=True):
            out[i] = row
    return out


def fitted(rows: list[dict], names: tuple[str, ...], near_miss_max: float, no_match_max: float,
           bounded: list[dict] | None = None, fitted_on: dict | None = None, learner: str = "logistic",
           confidence: float | None = None) -> Calibration:
    """The decision fitted on `rows`, its thresholds chosen on `bounded` (default: the same rows). Trees fit
    their own rows closely, so their thresholds are chosen on out-of-fold probabilities (FOLDS folds)."""
    return _fitted(rows, names, near_miss_max, no_match_max, bounded, fitted_on, learner, confidence)[0]


def _fitted(rows: list[dict], names: tuple[str, ...], near_miss_max: float, no_match_max: float,
            bounded: list[dict] | None, fitted_on: dict | None,
            learner: str, confidence: float | None = None) -> tuple[Calibration, dict[int, dict] | None]:
    """`fitted`, plus the trees' out-of-fold rows by id(row) (None for a line, whose own probabilities count)."""
    model = learned(rows, names, learner)
    held = None
    if learner == "trees":
        held = {id(r): row for r, row in zip(rows, out_of_fold(rows, names, learner), strict=True)}
        scored = [held[id(r)] for r in (rows if bounded is None else bounded)]
    else:
        scored = with_probabilities(rows if bounded is None else bounded, model)
    chosen = choose(scored, near_miss_max, no_match_max, confidence)
    return replace(model, answer_threshold=chosen["answer_threshold"],
                   suggest_threshold=chosen["suggest_threshold"], fitted_on=fitted_on or {}), held


def calibrate(searcher: Searcher, benches: list[Path], split: str, names: tuple[str, ...], near_miss_max: float,
              no_match_max: float, limit: int | None = None, curve_dir: Path | None = None,
              learner: str = "logistic", confidence: float | None = DEFAULT_CONFIDENCE) -> tuple[Calibration, dict]:
    """Fit the decision on the benches' `split` and choose its thresholds: the calibration, and a
    report of what it does to each bench (with curves under `curve_dir`).

    A bench without query kinds also runs its queries with their gold FAQs hidden (no-match rows);
    the false-answer bounds are held on the benches with kinds, when there are any."""
    from .bench import ensure_bench_index, load_queries

    settings = searcher.settings
    if settings.decide_order_band < 1:
        # Fitted on both orders of every pair: the one-order shortcut (decide_order_band) is judged against it.
        settings = settings.replace(decide_order_band=1.0)
        searcher = Searcher(settings, searcher.client, searcher.embedder, searcher.analyzer, searcher.reranker)
    mode = settings.search_mode
    parts = {}
    for bench in benches:
        queries = load_queries(bench, split, limit)
        alias = ensure_bench_index(searcher, bench)
        rows = collect(searcher, alias, queries, mode)
        if not any("kind" in q for q in queries):  # no no-match queries of its own: hide the gold FAQs
            rows += collect(searcher, alias, queries, mode, held_out=True)
        parts[bench.resolve().name] = (any("kind" in q for q in queries), rows)
    every = [r for _, rows in parts.values() for r in rows]
    bounded = [r for kinds, rows in parts.values() if kinds for r in rows] or every
    retrieval_mode = "hybrid" if mode == "rerank" else mode
    calibration, held = _fitted(every, names, near_miss_max, no_match_max, bounded, {
        "benches": sorted(parts), "split": split, "retrieval_mode": retrieval_mode, "model": settings.rerank_model,
        "weights_sha256": searcher.reranker.manifest.weights_sha256,
        "embed_model": settings.embed_model, "decide_depth": settings.decide_depth, "near_miss_max": near_miss_max,
        "no_match_max": no_match_max, "confidence": confidence, "scoring": scoring(settings)}, learner, confidence)
    chosen = {"answer_threshold": calibration.answer_threshold, "suggest_threshold": calibration.suggest_threshold}
    report: dict = {"calibration": {"features": names, "learner": learner, "coef": calibration.coef,
                                    "intercept": calibration.intercept, **chosen}, "outcomes": {}}
    # Trees would look better on the rows they were fitted on than they are: report them out of fold.
    report["outcomes_out_of_fold"] = held is not None
    # What each bound was held on at the chosen threshold: the dev rate, and the upper bound that had to fit.
    bounded_scored = [held[id(r)] for r in bounded] if held is not None else with_probabilities(bounded, calibration)
    report["calibration"]["bounds"] = {
        kind: {"queries": sum(r["kind"] == kind for r in bounded_scored), "max": most,
               "rate": upper_rate(bounded_scored, kind, calibration.answer_threshold, None),
               "upper": round(upper_rate(bounded_scored, kind, calibration.answer_threshold, confidence), 4)}
        for kind, most in (("near_miss", near_miss_max), ("no_match", no_match_max))}
    if not math.isfinite(calibration.answer_threshold):
        kinds = {k: b["queries"] for k, b in report["calibration"]["bounds"].items()}
        report["warnings"] = [
            f"no answer threshold keeps the false-answer bounds ({near_miss_max:.0%} near-miss, {no_match_max:.0%} "
            f"no-match) on these rows ({kinds['near_miss']} near-miss, {kinds['no_match']} no-match queries)"
            + (f" at confidence {confidence}" if confidence else "") + ": this decision would never answer. "
            "Add dev queries of those kinds"
            + (f" (a {no_match_max:.0%} bound held at {confidence} needs at least "
               f"{fewest_queries(no_match_max, confidence)} no-match queries, a {near_miss_max:.0%} bound "
               f"{fewest_queries(near_miss_max, confidence)} near-misses)"
               if confidence and near_miss_max > 0 and no_match_max > 0 else "")
            + ", loosen the bounds, or lower --confidence."]
    for name, (_, rows) in parts.items():
        scored = [held[id(r)] for r in rows] if held is not None else with_probabilities(rows, calibration)
        report["outcomes"][name] = outcomes(scored, chosen["answer_threshold"], chosen["suggest_threshold"])
        if curve_dir:
            title = f"{name} {split}: the decision over the answer threshold (calibrated on {', '.join(sorted(parts))})"
            points = curve(scored, chosen["suggest_threshold"])
            report["outcomes"][name]["curve"] = write_curve(points, chosen, title,
                                                            curve_dir / f"calibration-{name}-{split}")
    return calibration, report


def outcomes(rows: list[dict], answer: float, suggest: float, key: str = "probability") -> dict:
    """What the decision does to a split at these thresholds on rows' `key` (a probability)."""
    by_kind: dict[str, list[dict]] = {k: [r for r in rows if r["kind"] == k] for k in KINDS}
    answered = [r for r in rows if answers(r, answer, key)]
    para, near, none = by_kind["paraphrase"], by_kind["near_miss"], by_kind["no_match"]

    def share(part: list[dict], total: list[dict]) -> float | None:
        return round(len(part) / len(total), 4) if total else None

    judged_answers = [r for r in answered if judged(r)]
    return {
        "answer_threshold": answer, "suggest_threshold": suggest,
        "coverage": share([r for r in para if counts(r, answer, key)], para),
        "wrong_faq_rate": share([r for r in answered if r["kind"] == "paraphrase" and not r["right"]], para),
        "near_miss_false_answer_rate": share([r for r in near if counts(r, answer, key)], near),
        "no_match_false_answer_rate": share([r for r in none if counts(r, answer, key)], none),
        "answer_precision": (round(sum(r["right"] for r in judged_answers) / len(judged_answers), 4)
                             if judged_answers else None),
        "answered": share(answered, rows),
        "suggested": share([r for r in rows if r[key] is not None and r[key] >= suggest
                            and not answers(r, answer, key)], rows),
        "queries": {k: len(v) for k, v in by_kind.items()},
        "near_miss_by_difference": _by_difference([r for r in near if r["near_miss_hit"]], answer),
    }


def _by_difference(rows: list[dict], answer: float, key: str = "probability") -> dict:
    """Near-misses led by their look-alike, by how the look-alike differs: how many, how many answered."""
    out: dict[str, dict] = {}
    for r in rows:
        part = out.setdefault(r.get("difference") or "none", {"queries": 0, "answered": 0})
        part["queries"] += 1
        part["answered"] += int(answers(r, answer, key))
    for part in out.values():
        part["false_answer_rate"] = round(part["answered"] / part["queries"], 4)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["queries"]))


def curve(rows: list[dict], suggest: float, key: str = "probability") -> list[dict]:
    """`outcomes` at every answer threshold of GRID."""
    return [outcomes(rows, t, min(suggest, t), key) for t in GRID]


def upper_rate(rows: list[dict], kind: str, answer: float, confidence: float | None) -> float:
    """The false-answer rate of `kind` at this threshold; with `confidence`, the one-sided Clopper-Pearson upper
    bound on it, so that a bound held on a dev sample also holds, at that confidence, where the rate is measured
    again (a test split, real traffic)."""
    part = [r for r in rows if r["kind"] == kind]
    if not part:
        return 0.0
    k = sum(counts(r, answer) for r in part)
    if not confidence:  # None or 0: the rate itself
        return round(k / len(part), 4)  # as `outcomes` reports it
    from scipy.stats import beta

    return 1.0 if k == len(part) else float(beta.ppf(confidence, k + 1, len(part) - k))


def choose(rows: list[dict], near_miss_max: float, no_match_max: float, confidence: float | None = None) -> dict:
    """The answer threshold with the most coverage whose near-miss and no-match false-answer rates
    stay within bounds (rows of benches with kinds; with `confidence`, their upper confidence bounds do:
    `upper_rate`), and the suggest threshold that best separates queries whose FAQ is among the
    suggestions from no-match ones (Youden's J)."""
    answer = math.inf
    for t in GRID:
        if upper_rate(rows, "near_miss", t, confidence) <= near_miss_max and \
                upper_rate(rows, "no_match", t, confidence) <= no_match_max:
            answer = t
            break
    findable = [r["probability"] for r in rows if r["kind"] == "paraphrase" and r["in_suggestions"]]
    absent = [r["probability"] for r in rows if r["kind"] == "no_match"]

    def youden(t: float) -> float:
        return (sum(p >= t for p in findable) / max(1, len(findable))
                - sum(p >= t for p in absent) / max(1, len(absent)))

    suggest = max(GRID, key=youden) if findable and absent else 0.0
    return {"answer_threshold": answer, "suggest_threshold": min(suggest, answer)}


def with_probabilities(rows: list[dict], calibration: Calibration) -> list[dict]:
    """Rows with `probability` recomputed under `calibration` (no new searches; one model call for all)."""
    have = [i for i, r in enumerate(rows) if r["features"] is not None]
    x = np.array([[rows[i]["features"][n] for n in calibration.features] for i in have], dtype=float)
    p = calibration.probabilities(x.reshape(len(have), len(calibration.features))) if have else np.zeros(0)
    out = [{**r, "probability": None} for r in rows]
    for i, value in zip(have, p, strict=True):
        out[i]["probability"] = float(value)
    return out


def plot(points: list[dict], chosen: dict, title: str, path: Path) -> Path:
    """The decision's rates over the answer threshold, with the chosen one marked (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    x = [p["answer_threshold"] for p in points]
    for key, label in (("coverage", "coverage (paraphrases answered right)"),
                       ("wrong_faq_rate", "paraphrases answered with a wrong FAQ"),
                       ("near_miss_false_answer_rate", "near-misses answered with their look-alike"),
                       ("no_match_false_answer_rate", "no-match queries answered")):
        y = [p[key] for p in points]
        if any(v is not None for v in y):
            ax.plot(x, [math.nan if v is None else v for v in y], label=label)
    if math.isfinite(chosen["answer_threshold"]):
        ax.axvline(chosen["answer_threshold"], color="grey", linestyle="--", linewidth=1)
        ax.text(chosen["answer_threshold"], 1.02, f" answer_threshold {chosen['answer_threshold']}", fontsize=8)
    ax.set_xlabel("answer threshold on P(right)")
    ax.set_ylabel("share of queries of that kind")
    ax.set_ylim(0, 1.08)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_curve(points: list[dict], chosen: dict, title: str, stem: Path) -> dict[str, str]:
    """The curve as JSON and PNG beside each other: <stem>.json, <stem>.png."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({"chosen": chosen, "curve": points}, indent=1) + "\n", encoding="utf-8")
    return {"json": str(json_path), "png": str(plot(points, chosen, title, stem.with_suffix(".png")))}


__all__ = ["collect", "fit", "fit_trees", "out_of_fold", "choose", "fitted", "calibrate", "outcomes", "curve",
           "with_probabilities", "write_curve", "counts"]
