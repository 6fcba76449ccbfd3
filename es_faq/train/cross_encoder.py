"""`es-faq train reranker`: the cross-encoder that decides, trained pointwise on labelled pairs.

Binary cross-entropy on (query, question) pairs gives a logit whose sigmoid already means "these two
ask the same thing", which is what the answer decision needs (a listwise loss only orders
candidates). The run lives in one directory: the built pairs, a checkpoint every few hundred steps
(model, optimiser, schedule, step), dev metrics in log.jsonl, and the final weights. Started again
with the same recipe it resumes where the checkpoint left off.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config.settings import Settings
from ..errors import ModelError
from ..models.quantize import layout, quantize
from .base import load_base, load_trained
from .hardcases import GENERATED
from .loop import device, encode, install, register, training_data, with_init_data
from .pair_eval import metrics, pair_cosines
from .pairs import (
    Pair,
    bench_groups,
    corpus_file,
    dedupe,
    group_pairs,
    mined_pairs,
    read_pair_cache,
    read_pairs,
    write_pair_cache,
)
from .steps import check_recipe, finish, run_steps

if TYPE_CHECKING:
    from ..search.embed import Embedder

DEFAULTS = {
    # train.tsv of each. afqmc is inside atec; atec-preprocessed is atec's rest with altered text.
    "corpora": ["bq", "atec", "chip2019"],
    "benches": ["diac"],  # their train groups: paraphrases, near-misses, mined negatives
    "bench_repeat": 1,  # times an epoch the bench pairs (few, in the decision's own shape) are seen
    "mined_per_query": 2,
    # At most this many pairs of each corpus (a seeded sample; None: every pair). 60,000 keeps all of
    # chip2019 and two thirds of bq and atec, so that two epochs fit a 180-minute session on 2 CPU cores
    # (docs/training.md); every pair of everything, twice, would have taken about 2 hours of training.
    "corpus_limit": 60000,
    # Sources (text, paraphrase) the hard-case generator edits (es_faq/train/hardcases.py): one near-miss
    # each, and a meaning-keeping edit for `hard_positive_share` of them. 0 turns it off.
    "hard_cases": 40000,
    "hard_positive_share": 0.5,
    # The near-miss categories generated (es_faq/train/hardcases.py TRAINED_NEGATIVE; `swap` is there to
    # name, measured not to pay).
    "hard_negative": None,
    # dev pairs scored every eval_every steps: the learning curve (paws-x: word order)
    "dev": {"bq": 400, "afqmc": 400, "lcqmc": 400, "pawsx-zh": 400},
    "epochs": 2,
    "batch_size": 32,
    "lr": 6e-5,
    "head_lr": 1e-3,  # the pooler and classifier start from random weights
    "warmup": 0.05,
    "max_tokens": 80,  # the pair; 99.6% of corpus pairs fit
    # bf16 autocast: a whole training step (batch 32, padded to 64 tokens) took 586 ms against 2,705 ms in
    # fp32 on the 2-core AMD EPYC here (avx512_bf16; bench/train_step.py, docs/training.md). CPUs without
    # avx512_bf16 gain nothing: --no-bf16.
    "bf16": True,
    "freeze_word_embeddings": True,  # 15% faster a step on CPU; the pairs cover a small part of the vocabulary
    # Each pair of a step also read the other way round, with the same label: (a, b) and (b, a) ask the same
    # thing, which a model trained on one order only learns by chance (serving reads both: rerank_both_orders).
    # A step then holds 2 x batch_size sequences.
    "both_orders": False,
    "seed": 13,
    # A shipped cross-encoder to continue from (its INT8 weights, dequantized: es_faq/train/base.py), heads
    # included; None starts from bge-small-zh-v1.5 with fresh heads.
    "init": None,
    # A smaller model: keep only these encoder layers (indices into init's or the base's), e.g. [0, 3] halves
    # the cost of a pair (docs/training.md, "A two-layer student"). None keeps every layer.
    "layers": None,
    # A shipped cross-encoder whose logits (the mean of both orders, as the decision reads them), or a shipped
    # embedder whose cosines (on a logit scale: `cosine_logits`), the run learns from besides the labels: the
    # target is (1 - distill_weight) x label + distill_weight x sigmoid(its logit).
    "teacher": None,
    "distill_weight": 0.5,
    # Which pairs the teacher speaks on: "all"; "real" (the pairs people labelled, the corpora's and the benches':
    # the generated hard cases keep their labels); or "corpora" (the pair corpora only). An embedder cannot see
    # what makes a near-miss differ: its cosines softened the generated near-misses' labels and cost 5 points of
    # hard-case AUC; but that softening is also where its gains on the pair corpora came from ("real" kept the
    # hard-case AUC and lost them: reranker-zh-s6r, docs/training.md).
    "distill_on": "all",
    "eval_every": 1000,
    "checkpoint_every": 200,
}
FINAL = "final"


DISTILL_ON = ("all", "real", "corpora")


def recipe_of(**options) -> dict:
    recipe = {"task": "reranker", **DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(recipe) - set(DEFAULTS) - {"task"}
    if unknown:
        raise ModelError(f"unknown training options: {', '.join(sorted(unknown))}")
    if recipe["distill_on"] not in DISTILL_ON:
        raise ModelError(f"distill_on={recipe['distill_on']!r}: give one of {', '.join(DISTILL_ON)}")
    return recipe


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_pairs(settings: Settings, recipe: dict, run_dir: Path, progress: bool = True) -> list[Pair]:
    """Corpus pairs (read, then sampled to corpus_limit) plus the benches' pairs, which are built once
    per recipe and kept in the run directory (mining takes minutes)."""
    pairs: list[Pair] = []
    for corpus in recipe["corpora"]:
        pairs += read_pairs(corpus_file(settings.pairs_dir, corpus, "train"), corpus, recipe["corpus_limit"],
                            recipe["seed"])
    keys = ("benches", "mined_per_query", "seed")
    cache = run_dir / f"bench-pairs-{_digest({k: recipe[k] for k in keys})}.tsv"
    if not cache.exists():
        write_pair_cache(cache, _bench_pairs(settings, recipe, progress))
    bench = read_pair_cache(cache)
    hard: list[Pair] = []
    if recipe["hard_cases"]:
        hard_keys = ("corpora", "benches", "corpus_limit", "hard_cases", "hard_positive_share", "hard_negative",
                     "seed")
        cache = run_dir / f"hard-cases-{_digest({k: recipe[k] for k in hard_keys})}.tsv"
        if not cache.exists():
            write_pair_cache(cache, _hard_cases(settings, recipe, pairs))
        hard = read_pair_cache(cache)
    return pairs + bench * recipe["bench_repeat"] + hard


def _hard_cases(settings: Settings, recipe: dict, pairs: list[Pair]) -> list[Pair]:
    """Near-misses and meaning-keeping edits of the corpora's positive pairs and the benches' train groups."""
    from .hardcases import recipe_cases

    return [Pair(c.paraphrase, c.edited, c.label, c.source) for c in recipe_cases(settings, recipe, pairs)]


def _bench_pairs(settings: Settings, recipe: dict, progress: bool) -> list[Pair]:
    from ..evaluation.bench import ensure_bench_index
    from ..search.pipeline import Searcher
    from .loop import bench_path

    pairs: list[Pair] = []
    for bench_name in recipe["benches"]:
        bench = bench_path(settings, bench_name)
        groups = bench_groups(bench, "train")
        own = group_pairs(groups, bench.name, recipe["seed"])
        if recipe["mined_per_query"]:
            searcher = Searcher(settings)
            index = ensure_bench_index(searcher, bench, progress)
            own += mined_pairs(searcher, index, groups, bench.name, recipe["mined_per_query"], progress=progress)
        pairs += dedupe(own)
    return pairs


def dev_pairs(settings: Settings, recipe: dict) -> dict[str, list[Pair]]:
    return {corpus: read_pairs(corpus_file(settings.pairs_dir, corpus, "dev"), corpus, n, recipe["seed"])
            for corpus, n in recipe["dev"].items()}


def batches(pairs: list[Pair], batch_size: int, seed: int) -> list[list[int]]:
    """One epoch's batches of pair indices: shuffled, then length-sorted within windows of 50
    batches so padding stays short, then the batches shuffled again. Deterministic per seed."""
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    window = batch_size * 50
    out = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: len(pairs[i].text1) + len(pairs[i].text2))
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


def step_inputs(pairs: list[Pair], batch: list[int], both_orders: bool) -> tuple[list[tuple[str, str]], list[int]]:
    """A step's (text, text) sequences and the pair index whose label each one takes."""
    texts = [(pairs[i].text1, pairs[i].text2) for i in batch]
    if not both_orders:
        return texts, list(batch)
    return texts + [(b, a) for a, b in texts], list(batch) * 2


def predict(model, tokenizer, pairs: list[Pair], batch_size: int = 128, bf16: bool = False) -> np.ndarray:
    import torch

    model.eval()
    dev = device()
    out = []
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            logits = model(**encode(tokenizer, [(p.text1, p.text2) for p in chunk], dev)).logits[:, 0]
            out.append(logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def fit(settings: Settings, recipe: dict, run_dir: Path, progress: bool = True,
        stop_after: int | None = None) -> dict | None:
    """Train (or resume) the run in `run_dir`; returns the training record, or None when it stopped
    after `stop_after` steps of this run with a checkpoint to resume from."""
    import torch
    from transformers import BertForSequenceClassification, get_linear_schedule_with_warmup

    from ..models.onnx import load_tokenizer

    check_recipe(run_dir, recipe)
    started = time.monotonic()
    pairs = build_pairs(settings, recipe, run_dir, progress)
    dev_sets = dev_pairs(settings, recipe)
    torch.manual_seed(recipe["seed"])
    if recipe["init"]:
        model, tokenizer_file = load_trained(settings, recipe["init"], BertForSequenceClassification, num_labels=1)
    else:
        model, tokenizer_file = load_base(settings, BertForSequenceClassification, num_labels=1)
    if recipe["layers"]:
        keep_layers(model, recipe["layers"])
    tokenizer = load_tokenizer(tokenizer_file, recipe["max_tokens"])
    tokenizer.enable_padding(pad_to_multiple_of=8)  # few distinct shapes: oneDNN reuses its kernels
    # The word embeddings (10.8M of 24M weights) may stay as bge trained them (freeze_word_embeddings).
    model.bert.embeddings.word_embeddings.weight.requires_grad_(not recipe["freeze_word_embeddings"])
    dev = device()
    model.to(dev)
    per_epoch = math.ceil(len(pairs) / recipe["batch_size"])
    total = per_epoch * recipe["epochs"]
    head = [p for n, p in model.named_parameters() if not n.startswith("bert.embeddings") and
            not n.startswith("bert.encoder")]
    encoder = [p for n, p in model.named_parameters()
               if n.startswith(("bert.embeddings", "bert.encoder")) and p.requires_grad]
    # Fresh heads learn faster than the encoder; heads continued from `init` are trained ones.
    head_lr = recipe["lr"] if recipe["init"] else recipe["head_lr"]
    optimizer = torch.optim.AdamW([{"params": encoder, "lr": recipe["lr"]},
                                   {"params": head, "lr": head_lr}], weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, int(total * recipe["warmup"])), total)
    labels = torch.from_numpy(targets(settings, recipe, pairs, run_dir, progress))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    bf16 = recipe["bf16"]

    def evaluate_dev() -> dict:
        out = {}
        for corpus, rows in dev_sets.items():
            logits = predict(model, tokenizer, rows, bf16=bf16)
            out[corpus] = metrics(logits, np.array([p.label for p in rows]), 0.0)
        return out

    order: tuple[int, list[list[int]]] = (-1, [])

    def step_loss(step: int):
        nonlocal order
        epoch, index = divmod(step, per_epoch)
        if order[0] != epoch:
            order = (epoch, batches(pairs, recipe["batch_size"], recipe["seed"] + epoch))
        texts, targets = step_inputs(pairs, order[1][index], recipe["both_orders"])
        features = encode(tokenizer, texts, dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**features).logits[:, 0]
        return loss_fn(logits.float(), labels[targets].to(dev))

    seconds = run_steps(run_dir, model, optimizer, schedule, total, step_loss, evaluate_dev,
                        checkpoint_every=recipe["checkpoint_every"], eval_every=recipe["eval_every"],
                        desc="training cross-encoder", progress=progress, stop_after=stop_after)
    if seconds is None:
        return None
    return finish(model, run_dir / FINAL, {"recipe": recipe, "pairs": len(pairs), "steps": total},
                  seconds, started, _count_sources(pairs), evaluate_dev())


def targets(settings: Settings, recipe: dict, pairs: list[Pair], run_dir: Path, progress: bool = True) -> np.ndarray:
    """Each pair's training target: its label, mixed with the teacher's verdict where the recipe names a teacher
    (on every pair, on the labelled ones, or on the pair corpora's only: `distill_on`)."""
    labels = np.array([p.label for p in pairs], dtype=np.float32)
    if recipe["teacher"]:
        taught = [i for i, p in enumerate(pairs) if _taught(recipe["distill_on"], p.source, recipe["corpora"])]
        logits = teacher_logits(settings, recipe["teacher"], [pairs[i] for i in taught], run_dir, progress)
        weight = recipe["distill_weight"]
        labels[taught] = (1 - weight) * labels[taught] + weight / (1 + np.exp(-logits))
    return labels


def _taught(distill_on: str, source: str, corpora: list[str]) -> bool:
    if distill_on == "real":
        return not source.startswith(GENERATED)
    return distill_on == "all" or source in corpora


def keep_layers(model, layers: list[int]) -> None:
    """Cut `model`'s encoder down to `layers` (indices of its own layers, in the order given)."""
    import torch

    encoder = model.bert.encoder
    count = len(encoder.layer)
    if not layers or any(not 0 <= i < count for i in layers) or len(set(layers)) != len(layers):
        raise ModelError(f"layers={layers}: give distinct encoder layer indices from 0 to {count - 1}")
    encoder.layer = torch.nn.ModuleList(encoder.layer[i] for i in layers)
    model.config.num_hidden_layers = len(layers)


def teacher_logits(settings: Settings, teacher: str, pairs: list[Pair], run_dir: Path,
                   progress: bool = True) -> np.ndarray:
    """The shipped `teacher`'s logit of each pair, scored once and kept in the run directory under the teacher's
    weights and the pairs. A cross-encoder gives the mean of both orders' logits (what the decision reads); an
    embedder the cosine of the two texts' vectors, made a logit by a logistic fit on the run's own labels
    (`cosine_logits`)."""
    from ..models.manifest import Manifest
    from ..search.embed import Embedder
    from ..search.rerank import Reranker

    is_embedder = Manifest.load(teacher).data.get("task") in Embedder.tasks
    model: Embedder | Reranker
    model = Embedder(settings, teacher) if is_embedder else Reranker(settings.replace(rerank_both_orders=True), teacher)
    key = _digest({"teacher": teacher, "weights": model.manifest.weights_sha256,
                   "pairs": hashlib.sha256("\n".join(f"{p.text1}\t{p.text2}" for p in pairs).encode()).hexdigest()})
    cache = run_dir / f"teacher-{key}.npy"
    if cache.exists():
        return np.load(cache)
    if isinstance(model, Embedder):
        out = cosine_logits(model, pairs, progress)
    else:
        out = _chunked(lambda rows: model.score_pairs([(p.text1, p.text2) for p in rows]), pairs,
                       f"{teacher} scoring the pairs", progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".part.npy")
    np.save(partial, out)
    partial.rename(cache)
    return out


def cosine_logits(embedder: Embedder, pairs: list[Pair], progress: bool = True) -> np.ndarray:
    """An embedder's verdict on each pair as a logit: the cosine of the two texts' vectors, scaled and shifted by
    a logistic regression of the pairs' labels on it. A cosine of 0.9 means "same question" to one embedder and
    "related" to another; the fit puts it on the scale the labels (and a cross-encoder's logits) are on."""
    from sklearn.linear_model import LogisticRegression

    cosines = pair_cosines(lambda texts: _chunked(embedder.encode, texts, f"{embedder.manifest.name} embedding the "
                                                  "texts", progress), pairs)
    labels = np.array([p.label for p in pairs])
    if len(set(labels.tolist())) < 2:
        raise ModelError("an embedder teacher needs both labels among the pairs to put its cosines on a logit scale")
    fit = LogisticRegression(C=1e4).fit(cosines[:, None], labels)
    return (fit.coef_[0, 0] * cosines + fit.intercept_[0]).astype(np.float32)


def _chunked(score, rows: list, desc: str, progress: bool, chunk: int = 512) -> np.ndarray:
    from tqdm import tqdm

    parts = []
    with tqdm(total=len(rows), desc=desc, unit="row", disable=not progress) as bar:
        for start in range(0, len(rows), chunk):
            parts.append(np.asarray(score(rows[start:start + chunk]), dtype=np.float32))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _count_sources(pairs: list[Pair]) -> dict:
    out: dict[str, dict[str, int]] = {}
    for p in pairs:
        counts = out.setdefault(p.source, {"positive": 0, "negative": 0})
        counts["positive" if p.label else "negative"] += 1
    return out


def export_reranker(settings: Settings, name: str, run_dir: Path, quantization: str = "static",
                    calibration_size: int = 512) -> dict:
    """The final weights of a run as ONNX (fp32 + INT8) in the model cache, and its manifest in onnx_models/."""
    from ..models.export import onnx_export
    from ..models.manifest import Manifest
    from ..models.onnx import load_tokenizer
    from .base import BASE_MODEL

    final = run_dir / FINAL
    if not (final / "training.json").exists():
        raise ModelError(f"{run_dir} has no finished training; run `es-faq train reranker {name}` first")
    trained = json.loads((final / "training.json").read_text(encoding="utf-8"))
    recipe = trained["recipe"]
    tokenizer_file = Manifest.load(BASE_MODEL).file(settings, "tokenizer")
    tokenizer = load_tokenizer(tokenizer_file, recipe["max_tokens"])
    pairs = build_pairs(settings, recipe, run_dir, False)
    calibration = random.Random(recipe["seed"]).sample(pairs, min(calibration_size, len(pairs)))

    def export(tmp: Path, staged: Path) -> dict[str, Path]:
        files = onnx_export(final, staged, "text-classification", int8=False)
        files["model_int8"] = quantize(files["model"], staged / "model_int8.onnx", quantization, tokenizer,
                                       [(p.text1, p.text2) for p in calibration])
        return files

    record = install(settings, name, export, tokenizer_file, lambda: {**trained, **layout(quantization)})
    register(name, {"task": "reranker",
                    "description": "cross-encoder fine-tuned by `es-faq train reranker` from bge-small-zh-v1.5 on "
                                   "labelled Chinese question pairs; its logit says whether two questions ask the same",
                    "license": "MIT (base weights); see training_data for the terms of the data it learned from",
                    "training_data": with_init_data(training_data(recipe), recipe)},
             recipe, record, {"quantization": f"int8-{quantization}"})
    return record


def train_reranker(settings: Settings, name: str, recipe: dict, progress: bool = True,
                   quantization: str = "static") -> dict:
    """Fit (resuming a run of the same name), then export; what `es-faq train reranker` runs."""
    run_dir = settings.home / "train-runs" / name
    fit(settings, recipe, run_dir, progress)
    return export_reranker(settings, name, run_dir, quantization)
