"""`es-faq train reranker`: a cross-encoder fine-tuned with a listwise loss over mined hard negatives.

Each example is a query with one positive question and group_size - 1 negatives: `hard` of them
sampled from the hard_pool highest-ranked wrong FAQs, the rest random questions; the loss is the cross-entropy of the positive among the group's
logits, as bge-reranker and the CrashSight / Beike write-ups train theirs.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from .base import load_base
from .loop import bench_name, device, encode, run, sample_negatives

DEFAULTS = {"epochs": 1, "batch_size": 8, "group_size": 8, "hard": 4, "hard_pool": 20, "lr": 2e-4, "head_lr": 5e-4,
            "max_tokens": 64,
            "depth": 30, "seed": 13, "limit": None}


def _build(settings: Settings):
    from transformers import BertForSequenceClassification

    return load_base(settings, BertForSequenceClassification, num_labels=1)


def _make_loss(tokenizer, groups, recipe):
    import torch
    import torch.nn.functional as F

    fill = [t for g in groups for t in g.positives]
    size, hard, pool, dev = recipe["group_size"], recipe["hard"], recipe["hard_pool"], device()

    def loss(model, batch, rng):
        pairs = []
        for group in batch:
            pairs.append((group.query, rng.choice(group.positives)))
            pairs += [(group.query, n) for n in sample_negatives(group, size - 1, pool, fill, rng, hard)]
        logits = model(**encode(tokenizer, pairs, dev)).logits.view(len(batch), size)
        return F.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long, device=dev))

    return loss


def train_reranker(settings: Settings, bench: Path, name: str, progress: bool = True, **options) -> dict:
    # The embedder whose hybrid search mines the hard negatives: the one the reranker will rerank for.
    recipe = {"task": "reranker", "bench": bench_name(settings, bench), "embedder": settings.embed_model, **DEFAULTS,
              **{k: v for k, v in options.items() if v is not None}}
    return run(settings, "reranker", bench, name, recipe, _build, _make_loss, {"quantization": "int8"}, progress)
