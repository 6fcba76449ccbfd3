"""`es-faq eval-pairs`: the cross-encoder on labelled question pairs (accuracy, F1, ROC-AUC).

The threshold on the logit is chosen on training data, never on the dev pairs it is scored on:
on a sample of the corpus's own train.tsv, or, for corpora with no train file (lcqmc, oppo,
pawsx), on the pooled samples of the corpora that have one.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..config import Settings
from ..search.rerank import Reranker
from .pairs import Pair, corpus_file, read_pairs

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


def evaluate_pairs(settings: Settings, corpora: tuple[str, ...] = CORPORA, model: str | None = None,
                   limit: int | None = None, progress: bool = True) -> dict:
    """Per corpus: the dev metrics at the threshold chosen on training data."""
    reranker = Reranker(settings, model)
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
    out: dict = {"model": reranker.manifest.name, "corpora": {}}
    for corpus in corpora:
        dev = read_pairs(corpus_file(settings.pairs_dir, corpus, "dev"), corpus, limit, seed=7)
        logits = _score(reranker, dev, f"{corpus} dev", progress)
        row = metrics(logits, np.array([p.label for p in dev]), thresholds.get(corpus, fallback))
        row["threshold_from"] = f"{corpus} train sample" if corpus in thresholds else "pooled train samples"
        out["corpora"][corpus] = row
    return out
