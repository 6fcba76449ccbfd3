"""Training (optional extra `[train]`: torch + transformers): a cross-encoder reranker and a
fine-tuned embedder, both started from the bge-small-zh-v1.5 fp32 weights and exported to ONNX."""

from __future__ import annotations

from ..config import Settings


def train(settings: Settings, name: str, recipe: dict, progress: bool = True) -> dict:
    """Train model `name` from a recipe (what `onnx_models/<name>.json` records under source.train)."""
    from .loop import bench_path

    options = {k: v for k, v in recipe.items() if k not in ("task", "bench", "embedder")}
    bench = bench_path(settings, recipe["bench"])
    if recipe.get("embedder"):  # mine with the embedder the recipe was mined with
        settings = settings.replace(embed_model=recipe["embedder"])
    if recipe["task"] == "reranker":
        from .reranker import train_reranker

        return train_reranker(settings, bench, name, progress, **options)
    from .embedder import train_embedder

    return train_embedder(settings, bench, name, progress, **options)
