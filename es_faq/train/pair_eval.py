"""`es-faq eval-pairs`: the cross-encoder on labelled question pairs (accuracy, F1, ROC-AUC).

The threshold on the logit is chosen on training data, never on the dev pairs it is scored on:
on a sample of the corpus's own train.tsv, or, for corpora with no train file (lcqmc, oppo,
pawsx), on the pooled samples of the corpora that have one. The hard cases (es_faq/train/hardcases.py)
generated from a bench's *dev* groups are scored per category at the pooled threshold: which kinds of
near-miss the model still takes for a paraphrase, and which paraphrases it rejects.

Beside the cross-encoder, each corpus reports the ROC-AUC of the embedder's cosine (the decision's other
verifier: the vector side's score of the leader's best-matching question) and of the two as the decision weighs
them (`decision_pair_auc`: the calibration's coefficients of the logit and the vector score; the margins, which a
lone pair does not have, left out). The embedder out-scores the cross-encoder on general-domain pairs (lcqmc,
oppo): docs/benchmarks.md, "Two verifiers on pairs".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from ..config.settings import Settings
from .pairs import Pair, bench_groups, corpus_file, read_pairs

if TYPE_CHECKING:  # the trainers import metrics on machines without the search stack (bench/gpu_train.py)
    from ..search.rerank import Reranker

CORPORA = ("bq", "afqmc", "lcqmc", "chip2019", "oppo-xiaobu", "pawsx-zh")
THRESHOLD_SAMPLE = 2000


def metrics(logits: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Accuracy and F1 at `threshold` on the logit, ROC-AUC over all thresholds."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = (logits >= threshold).astype(int)
    return {"pairs": int(len(labels)), "threshold": round(float(threshold), 4),
            "accuracy": round(100 * float(accuracy_score(labels, predicted)), 2),
            "f1": round(100 * float(f1_score(labels, predicted, zero_division=0)), 2),
            "auc": round(100 * float(roc_auc_score(labels, logits)), 2) if len(set(labels.tolist())) > 1 else None}


def best_threshold(logits: np.ndarray, labels: np.ndarray) -> float:
    """The logit threshold with the highest accuracy (midpoints between sorted logits)."""
    order = np.sort(np.unique(logits))
    candidates = np.concatenate([[order[0] - 1], (order[:-1] + order[1:]) / 2, [order[-1] + 1]])
    accuracy = [np.mean((logits >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def _score(reranker: Reranker, pairs: list[Pair], label: str, progress: bool) -> np.ndarray:
    size = 256
    chunks = range(0, len(pairs), size)
    return np.concatenate([reranker.score_pairs([(p.text1, p.text2) for p in pairs[i:i + size]])
                           for i in tqdm(chunks, desc=label, unit="chunk", disable=not progress)])


def hard_case_pairs(settings: Settings, bench: str, sources: int, seed: int = 7) -> list[Pair]:
    """Generated hard cases of a bench's dev groups (never trained on), their category in `source`."""
    from .hardcases import Generator, generate, sources_from

    groups = [[*g.faq.texts, *g.paraphrases] for g in bench_groups(settings.bench_dir / bench, "dev")]
    generator = Generator(t for g in groups for t in g)
    return generate(generator, sources_from([], groups, sources, seed), bench, seed)


def pair_cosines(encode: Callable[[list[str]], np.ndarray], pairs: list[Pair]) -> np.ndarray:
    """The cosine of each pair's two texts, each distinct text embedded once (`encode`: texts to unit vectors)."""
    texts = list(dict.fromkeys(t for p in pairs for t in (p.text1, p.text2)))
    vectors = encode(texts)
    row = {t: i for i, t in enumerate(texts)}
    return np.einsum("ij,ij->i", vectors[[row[p.text1] for p in pairs]], vectors[[row[p.text2] for p in pairs]])


class _SecondVerifier:
    """The embedder's cosine on pairs, alone and weighed with the logit as the model's decision calibration
    weighs the two (its `pair_logit` and `vector_score` coefficients; none when it has no such pair)."""

    def __init__(self, settings: Settings, model: str):
        from ..errors import ModelError
        from ..search.decide import Calibration
        from ..search.embed import Embedder

        self.embedder = Embedder(settings)
        try:
            calibration = Calibration.load(model)
        except ModelError:  # a model not calibrated yet (a fresh training run): the embedder alone
            calibration = None
        weights = dict(zip(calibration.features, calibration.coef, strict=False)) if calibration else {}
        self.weights = ({"pair_logit": weights["pair_logit"], "vector_score": weights["vector_score"]}
                        if calibration and calibration.learner == "logistic" and
                        {"pair_logit", "vector_score"} <= set(weights) else None)

    def aucs(self, pairs: list[Pair], logits: np.ndarray, labels: np.ndarray) -> dict:
        from sklearn.metrics import roc_auc_score

        if len(set(labels.tolist())) < 2:
            return {}
        cosines = pair_cosines(self.embedder.encode, pairs)
        out = {"embedder_auc": round(100 * float(roc_auc_score(labels, cosines)), 2)}
        if self.weights:  # the vector score is (1 + cosine) / 2, as the engine gives it
            both = self.weights["pair_logit"] * logits + self.weights["vector_score"] * (1 + cosines) / 2
            out["decision_pair_auc"] = round(100 * float(roc_auc_score(labels, both)), 2)
        return out


def _by_category(logits: np.ndarray, pairs: list[Pair], threshold: float) -> dict:
    out = {}
    for category in sorted({p.source.split(":", 1)[1] for p in pairs}):
        rows = [i for i, p in enumerate(pairs) if p.source.endswith(f":{category}")]
        label = pairs[rows[0]].label
        right = sum(bool((logits[i] >= threshold) == bool(label)) for i in rows)
        out[category] = {"pairs": len(rows), "label": label, "accuracy": round(100 * right / len(rows), 2)}
    return out


def evaluate_pairs(settings: Settings, corpora: tuple[str, ...] = CORPORA, model: str | None = None,
                   limit: int | None = None, progress: bool = True, hard_bench: str | None = "diac",
                   hard_sources: int = 2000) -> dict:
    """Per corpus: the dev metrics at the threshold chosen on training data."""
    from ..search.rerank import Reranker

    reranker = Reranker(settings, model)
    second = _SecondVerifier(settings, reranker.manifest.name)
    thresholds: dict[str, float] = {}
    pooled: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for corpus in corpora:
        train = corpus_file(settings.pairs_dir, corpus, "train")
        if train.exists():
            sample = read_pairs(train, corpus, THRESHOLD_SAMPLE, seed=7)
            logits = _score(reranker, sample, f"{corpus} train sample", progress)
            labels = np.array([p.label for p in sample])
            thresholds[corpus] = best_threshold(logits, labels)
            pooled[0].append(logits)
            pooled[1].append(labels)
    fallback = best_threshold(np.concatenate(pooled[0]), np.concatenate(pooled[1])) if pooled[0] else 0.0
    out: dict = {"model": reranker.manifest.name, "embedder": second.embedder.manifest.name,
                 "decision_weights": second.weights, "corpora": {}}
    for corpus in corpora:
        dev = read_pairs(corpus_file(settings.pairs_dir, corpus, "dev"), corpus, limit, seed=7)
        logits = _score(reranker, dev, f"{corpus} dev", progress)
        labels = np.array([p.label for p in dev])
        row = metrics(logits, labels, thresholds.get(corpus, fallback))
        row["threshold_from"] = f"{corpus} train sample" if corpus in thresholds else "pooled train samples"
        out["corpora"][corpus] = {**row, **second.aucs(dev, logits, labels)}
    if hard_bench and hard_sources:
        pairs = hard_case_pairs(settings, hard_bench, hard_sources)
        logits = _score(reranker, pairs, f"{hard_bench} dev hard cases", progress)
        labels = np.array([p.label for p in pairs])
        row = metrics(logits, labels, fallback)
        out["hard_cases"] = {"bench": hard_bench, "split": "dev", **row, "threshold_from": "pooled train samples",
                             **second.aucs(pairs, logits, labels), "categories": _by_category(logits, pairs, fallback)}
    return out
