"""`es-faq train embedder`: contrastive fine-tuning (InfoNCE) of the bi-encoder.

Each query (with the model's instruction prefix) must pick its positive question out of every other
example's positive in the batch (in-batch negatives) plus its own mined hard negatives; similarities
of L2-normalised CLS vectors are divided by the temperature. A text that is also a positive of the
query (two paraphrases of one FAQ in a batch) is masked out, not counted as a negative.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..models.manifest import Manifest
from .base import BASE_MODEL, load_base
from .loop import bench_name, device, encode, run, sample_negatives

DEFAULTS = {"epochs": 2, "batch_size": 32, "hard_negatives": 1, "hard_pool": 10, "temperature": 0.07,
            "lr": 5e-5, "max_tokens": 64, "depth": 30, "seed": 13, "limit": None}


def _build(settings: Settings):
    from transformers import BertModel

    return load_base(settings, BertModel, add_pooling_layer=False)


def _make_loss(tokenizer, groups, recipe):
    import torch
    import torch.nn.functional as F

    prefix = Manifest.load(BASE_MODEL).data.get("query_prefix", "")
    fill = [t for g in groups for t in g.positives]
    hard, pool, temperature, dev = recipe["hard_negatives"], recipe["hard_pool"], recipe["temperature"], device()

    def embed(model, texts):
        hidden = model(**encode(tokenizer, texts, dev)).last_hidden_state[:, 0]
        return F.normalize(hidden, dim=-1)

    def loss(model, batch, rng):
        docs = [rng.choice(g.positives) for g in batch]
        for group in batch:
            docs += sample_negatives(group, hard, pool, fill, rng)
        queries = embed(model, [prefix + g.query for g in batch])
        scores = queries @ embed(model, docs).T / temperature
        mask = torch.tensor([[j != i and docs[j] in set(g.positives) for j in range(len(docs))]
                             for i, g in enumerate(batch)], device=dev)
        scores = scores.masked_fill(mask, float("-inf"))
        return F.cross_entropy(scores, torch.arange(len(batch), device=dev))

    return loss


def train_embedder(settings: Settings, bench: Path, name: str, progress: bool = True, **options) -> dict:
    recipe = {"task": "embedder", "bench": bench_name(settings, bench), **DEFAULTS,
              **{k: v for k, v in options.items() if v is not None}}
    base = Manifest.load(BASE_MODEL).data
    extra = {"dims": base["dims"], "pooling": "cls", "normalize": True, "quantization": "int8",
             "query_prefix": base["query_prefix"]}
    return run(settings, "embedding", bench, name, recipe, _build, _make_loss, extra, progress)
