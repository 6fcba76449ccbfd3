"""Training on mined groups (the embedder's run: mine, fine-tune, export), and what both trainers share:
batches of token tensors, and installing a trained model (`install`, `register`).

`run` takes the model class, how to build the model, and the loss of one batch of groups. Either
trainer's result is a model directory in the cache (ONNX fp32, INT8 copy, tokenizer, training.json)
that replaces the old one only when complete, and its manifest in `onnx_models/<name>.json`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ..config import Settings
from ..errors import ModelError
from ..evaluation.bench import ensure_bench_index
from ..models.export import onnx_export
from ..models.files import sha256_of
from ..models.manifest import RECIPE_FILE, Manifest
from ..models.onnx import load_tokenizer
from ..search.pipeline import Searcher
from .mine import Group, load_groups, mine, save_groups


def bench_path(settings: Settings, bench: str) -> Path:
    path = Path(bench)
    if not path.is_absolute():
        path = settings.bench_dir / bench
    if not (path / "faqs.jsonl").exists():
        raise ModelError(f"no faq-bench directory at {path} (faqs.jsonl + queries.jsonl); "
                         "pass --bench DIR or set ES_FAQ_BENCH_DIR")
    return path


def bench_name(settings: Settings, bench: Path) -> str:
    """How a recipe names its bench: relative to bench_dir when inside it, so recipes travel."""
    try:
        return str(bench.resolve().relative_to(settings.bench_dir.resolve()))
    except ValueError:
        return str(bench.resolve())


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def encode(tokenizer, items, dev):
    """Token tensors for texts or (text, text) pairs, padded to the longest in the batch."""
    import torch

    encodings = tokenizer.encode_batch(items)
    return {"input_ids": torch.tensor([e.ids for e in encodings], device=dev),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], device=dev),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings], device=dev)}


def sample_negatives(group: Group, count: int, pool: int, fill: list[str], rng: random.Random,
                     hard: int | None = None) -> list[str]:
    """`count` negatives: `hard` of them (default all) from the group's `pool` hardest, the rest random
    knowledge-base texts. Paraphrase corpora label many near-paraphrases as different questions, so
    all-hard groups can be too noisy to learn from; random ones keep an easy signal in every group."""
    candidates = group.negatives[:pool]
    chosen = rng.sample(candidates, min(count if hard is None else min(hard, count), len(candidates)))
    banned = set(group.positives) | set(chosen)
    while len(chosen) < count:
        text = rng.choice(fill)
        if text not in banned:
            chosen.append(text)
            banned.add(text)
    return chosen


def fine_tune(model, groups: list[Group], batch_loss, *, epochs: int, batch_size: int, lr: float, head_lr: float,
              seed: int, progress: bool) -> list[float]:
    """AdamW with linear warm-up and decay; returns the mean loss of each epoch.

    Layers the base lacks (a classifier head) start from random weights and learn at `head_lr`:
    at the encoder's rate they would barely move in a few hundred steps."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.to(device()).train()
    steps = epochs * math.ceil(len(groups) / batch_size)
    base = {id(p) for p in model.base_model.parameters()}
    head = [p for p in model.parameters() if id(p) not in base]
    groups_ = [{"params": list(model.base_model.parameters()), "lr": lr}]
    if head:
        groups_.append({"params": head, "lr": head_lr})
    optimizer = torch.optim.AdamW(groups_, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, steps // 10), steps)
    losses = []
    with tqdm(total=steps, desc="training", unit="step", disable=not progress) as bar:
        for _ in range(epochs):
            order = list(groups)
            rng.shuffle(order)
            total = 0.0
            for start in range(0, len(order), batch_size):
                loss = batch_loss(model, order[start:start + batch_size], rng)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                total += loss.item()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
            losses.append(round(total / math.ceil(len(order) / batch_size), 4))
    model.eval()
    return losses


def _mined(searcher: Searcher, index: str, bench: Path, recipe: dict, settings: Settings,
           progress: bool) -> list[Group]:
    """Mined groups, cached by everything they depend on (mining a large bench takes minutes)."""
    key = {"faqs": sha256_of(bench / "faqs.jsonl"), "queries": sha256_of(bench / "queries.jsonl"),
           "model": searcher.embedder.manifest.name, "dictionary_version": searcher.analyzer.rewriter.version,
           **{k: recipe.get(k) for k in ("depth", "limit", "seed")}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache = settings.home / "train-cache" / f"{bench.resolve().name}-{digest}.jsonl"
    if cache.exists():
        return load_groups(cache)
    groups = mine(searcher, index, bench, recipe["depth"], recipe.get("limit"), recipe["seed"], progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_groups(groups, cache)
    return groups


def run(settings: Settings, task: str, bench: Path, name: str, recipe: dict, build_model, make_loss,
        manifest_extra: dict, progress: bool = True) -> dict:
    """Mine, fine-tune, export and register one model; returns what training.json records."""
    started = time.monotonic()
    searcher = Searcher(settings)
    index = ensure_bench_index(searcher, bench, progress)
    groups = _mined(searcher, index, bench, recipe, settings, progress)
    if not groups:
        raise ModelError(f"no training examples could be mined from {bench}")
    model, tokenizer_file = build_model(settings)
    tokenizer = load_tokenizer(tokenizer_file, recipe["max_tokens"])
    losses = fine_tune(model, groups, make_loss(tokenizer, groups, recipe), epochs=recipe["epochs"],
                       batch_size=recipe["batch_size"], lr=recipe["lr"], head_lr=recipe.get("head_lr", recipe["lr"]),
                       seed=recipe["seed"], progress=progress)

    def export(tmp: Path, staged: Path) -> dict[str, Path]:
        checkpoint = tmp / "checkpoint"
        model.save_pretrained(checkpoint)
        return onnx_export(checkpoint, staged, "feature-extraction", int8=True)

    record = install(settings, name, export, tokenizer_file, lambda: {
        "name": name, "task": task, "recipe": recipe, "examples": len(groups), "epoch_losses": losses,
        "device": str(device()), "seconds": round(time.monotonic() - started, 1)})
    register(name, {"task": task, "description": f"fine-tuned by `es-faq train {recipe['task']}` from "
                    f"bge-small-zh-v1.5 on {recipe['bench']}", "license": "MIT (base weights)"},
             recipe, record, manifest_extra)
    return record


def install(settings: Settings, name: str, export: Callable[[Path, Path], dict[str, Path]], tokenizer_file: Path,
            record: Callable[[], dict]) -> dict:
    """A trained model into the cache as `<models_path>/<name>/`, replacing the old one only once complete.

    `export(tmp, staged)` writes the ONNX files into `staged` and names them by role; the tokenizer
    joins them, anything else optimum wrote is dropped, and `record()` with each file's sha256 is
    written beside them as training.json. Returns that record."""
    target = settings.models_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        staged = Path(tmp) / "model"
        files = export(Path(tmp), staged)
        shutil.copy(tokenizer_file, staged / "tokenizer.json")
        files["tokenizer"] = staged / "tokenizer.json"
        for extra in staged.iterdir():  # optimum's config files: the manifest says what is needed
            if extra not in files.values():
                extra.unlink()
        written = {**record(), "files": {role: {"path": p.name, "sha256": sha256_of(p)} for role, p in files.items()}}
        (staged / RECIPE_FILE).write_text(json.dumps(written, ensure_ascii=False, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return written


def register(name: str, about: dict, recipe: dict, record: dict, extra: dict) -> Manifest:
    """The manifest of a model trained by `recipe`: `about` it (task, description, licence), its files, `extra`."""
    manifest = Manifest(name, {"name": name, **about, "source": {"train": recipe},
                               "files": {role: {"path": spec["path"]} for role, spec in record["files"].items()},
                               "max_tokens": recipe["max_tokens"], **extra})
    manifest.save()
    return manifest
