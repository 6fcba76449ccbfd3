"""Dense-only recall of an embedder on a faq-bench split, computed in memory (no index).

What the embedder alone contributes to retrieval: every question text of the knowledge base is
embedded, an FAQ scores the best cosine among its texts, and a query's rank is one plus the number
of FAQs scoring above its best gold FAQ. It is the embedder's learning curve during training and
the quick comparison of two embedders (or of one with and without its query prefix); the service's
own figures (hybrid, through Elasticsearch) come from `es-faq evaluate`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..evaluation.bench import load_queries
from ..kb.faq import read_faqs

Encode = Callable[[list[str]], np.ndarray]


def bench_texts(bench: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, the FAQ index of each text, FAQ ids): every question and similar question, FAQ by FAQ."""
    texts, owner, ids = [], [], []
    for faq in read_faqs(bench / "faqs.jsonl"):
        ids.append(faq.id)
        for text in faq.texts:
            texts.append(text)
            owner.append(len(ids) - 1)
    return texts, np.array(owner), ids


def dev_queries(bench: Path, split: str, sample: int | None, seed: int) -> list[dict]:
    """The split's queries that have a gold FAQ, a seeded sample of `sample` of them (None: all)."""
    rows = [r for r in load_queries(bench, split) if r.get("relevant")]
    if sample and sample < len(rows):
        rows = random.Random(seed).sample(rows, sample)
    return rows


def ranks(query_vectors: np.ndarray, text_vectors: np.ndarray, owner: np.ndarray, faq_count: int,
          gold: Sequence[Sequence[int]]) -> np.ndarray:
    """The 1-based rank of each query's best gold FAQ when FAQs are ordered by their best text's cosine."""
    # Texts come FAQ by FAQ (bench_texts), so each FAQ's texts are one run of columns.
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    assert len(starts) == faq_count, "texts must be grouped FAQ by FAQ, each FAQ with at least one text"
    out = np.zeros(len(gold), dtype=np.int64)
    for start in range(0, len(gold), 256):
        faq_scores = np.maximum.reduceat(query_vectors[start:start + 256] @ text_vectors.T, starts, axis=1)
        for row, wanted in enumerate(gold[start:start + 256]):
            best = faq_scores[row, list(wanted)].max()
            out[start + row] = 1 + int((faq_scores[row] > best).sum())
    return out


def dense_recall(encode: Encode, bench: Path, split: str = "dev", sample: int | None = None, seed: int = 13,
                 prefix: str = "", ks: Sequence[int] = (1, 10, 50), cache: dict | None = None) -> dict:
    """R@k of dense retrieval alone for the split's queries (`prefix` put before each query).

    `cache`, when given, keeps the bench's texts and queries between calls (the vectors are not kept:
    they change as the model trains)."""
    key = (str(bench), split, sample, seed)
    if cache is not None and key in cache:
        texts, owner, ids, rows = cache[key]
    else:
        texts, owner, ids = bench_texts(bench)
        rows = dev_queries(bench, split, sample, seed)
        if cache is not None:
            cache[key] = (texts, owner, ids, rows)
    position = {fid: i for i, fid in enumerate(ids)}
    gold = [[position[f] for f in r["relevant"] if f in position] for r in rows]
    keep = [i for i, g in enumerate(gold) if g]
    found = ranks(encode([prefix + rows[i]["query"] for i in keep]), encode(texts), owner, len(ids),
                  [gold[i] for i in keep])
    return {"queries": len(keep), **{f"r@{k}": round(float((found <= k).mean()), 4) for k in ks},
            "mrr": round(float((1.0 / found).mean()), 4)}
