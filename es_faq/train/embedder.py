"""`es-faq train embedder`: contrastive fine-tuning (InfoNCE) of the bi-encoder that retrieves.

An example is a query, the texts it must find (positives) and texts it must not (hard negatives):
- each positive pair of the pair corpora, its label-0 partners as hard negatives (the corpora's
  negatives are same-topic, lexically close questions: what a retriever confuses);
- each paraphrase query of a bench's train groups, and each similar question of their FAQs, with
  the FAQ's other texts as positives and, for the benches in `mine`, the question texts of the FAQs
  the hybrid search ranks highest with the FAQ itself hidden.
A step's queries must each pick one of their positives out of every text in the batch: the others'
positives (in-batch negatives) plus `hard_negatives` hard negatives per query, cosine similarities
of L2-normalised CLS vectors over the temperature. A text that is also a positive of the query is
masked, not counted as a negative. Queries are embedded without an instruction prefix: on the
shipped base model the prefix did not raise dense recall on diac or bq dev (docs/training.md) and
it triples a short query's tokens.

The run lives in ~/.cache/es-faq/train-runs/NAME (resumable, checkpoints, log.jsonl with dense
R@1 / R@10 / R@50 on dev samples); the export is ONNX fp32 plus a static INT8 copy, so that a vector
does not depend on its batch-mates.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config.settings import Settings
from ..errors import ModelError
from .base import BASE_MODEL, load_base, load_trained
from .dense_eval import dense_recall
from .loop import bench_path, device, encode, install, register, training_data, with_init_data
from .pair_eval import hard_case_pairs, metrics, pair_cosines
from .pairs import (
    Pair,
    bench_groups,
    corpus_file,
    mined_pairs,
    read_pair_cache,
    read_pairs,
    write_pair_cache,
)
from .steps import check_recipe, finish, run_steps

if TYPE_CHECKING:  # the generator needs jieba, which a lent GPU machine has not: imported where cases are made
    from .hardcases import Case

DEFAULTS = {
    "corpora": ["bq", "atec", "chip2019"],  # train.tsv of each (positives, and their label-0 partners)
    "corpus_limit": None,  # at most this many pairs of each corpus (a seeded sample); None: all
    "benches": ["diac", "bq", "atec"],  # train groups: paraphrase queries and FAQ texts
    "mine": ["diac", "bq"],  # benches whose groups get negatives mined by the hybrid search (an index each)
    "mined_per_query": 3,
    # Sources (text, paraphrase) the hard-case generator edits (es_faq/train/hardcases.py), as the cross-encoder's
    # recipe draws them: each near-miss becomes the hard negative of the paraphrase looking for its text, each
    # meaning-keeping edit a query of its own. 0 (the shipped embedder's recipe) turns it off.
    "hard_cases": 0,
    "hard_positive_share": 0.5,
    "hard_negative": None,
    "hard_negatives": 1,  # per query per step, from its own hard negatives (else a random text)
    "epochs": 1,
    "batch_size": 64,
    "lr": 3e-5,
    "warmup": 0.05,
    "temperature": 0.05,
    "max_tokens": 64,
    "bf16": True,  # see the cross-encoder: about 4.6x faster a step on the avx512_bf16 CPU here
    "freeze_word_embeddings": True,
    "seed": 13,
    "init": None,  # a shipped embedder es-faq trained, to continue from instead of bge-small-zh-v1.5
    "dev": {"diac": 600, "bq": None},  # dev queries (None: all) for dense recall over the bench's FAQs
    # Per bench, the sources of generated hard cases of its dev groups (pair_eval.hard_case_pairs) whose cosine
    # ROC-AUC is logged with the recall: whether the vectors tell a near-miss from a paraphrase. Built with the
    # examples.
    "dev_hard_cases": {"diac": 2000},
    "eval_every": 500,
    "checkpoint_every": 100,
}
FINAL = "final"


@dataclass
class Example:
    query: str
    positives: list[str]
    negatives: list[str]
    source: str


def recipe_of(**options) -> dict:
    recipe = {"task": "embedder", **DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(recipe) - set(DEFAULTS) - {"task"}
    if unknown:
        raise ModelError(f"unknown training options: {', '.join(sorted(unknown))}")
    return recipe


def corpus_examples(path: Path, source: str, limit: int | None, seed: int) -> list[Example]:
    """One example per positive pair (text1 finds text2), with text1's label-0 partners as negatives."""
    return pair_examples(read_pairs(path, source, limit, seed), source)


def pair_examples(pairs: list[Pair], source: str) -> list[Example]:
    positives: dict[str, set[str]] = {}
    negatives: dict[str, list[str]] = {}
    for p in pairs:
        for a, b in ((p.text1, p.text2), (p.text2, p.text1)):
            if p.label:
                positives.setdefault(a, set()).add(b)
            else:
                negatives.setdefault(a, []).append(b)
    out = []
    for p in pairs:
        if p.label and p.text1 != p.text2:
            same = positives[p.text1]
            out.append(Example(p.text1, sorted(same), [t for t in negatives.get(p.text1, []) if t not in same],
                               source))
    return out


def case_examples(cases: list[Case]) -> list[Example]:
    """A near-miss is the hard negative of the paraphrase that looks for the text it was edited from; a
    meaning-keeping edit looks for its text (and the paraphrase) itself."""
    return [Example(c.paraphrase, [c.text], [c.edited], c.source) if c.label == 0 else
            Example(c.edited, sorted({c.text, c.paraphrase} - {c.edited}), [], c.source)
            for c in cases]


def bench_examples(settings: Settings, bench_name: str, mine: bool, per_query: int,
                   progress: bool) -> list[Example]:
    """Each paraphrase and FAQ text of the bench's train groups finds the FAQ's other texts."""
    bench = bench_path(settings, bench_name)
    groups = bench_groups(bench, "train")
    mined: dict[str, list[str]] = {}
    if mine:
        from ..evaluation.bench import ensure_bench_index
        from ..search.pipeline import Searcher

        searcher = Searcher(settings)
        index = ensure_bench_index(searcher, bench, progress)
        for pair in mined_pairs(searcher, index, groups, bench.name, per_query, progress=progress):
            mined.setdefault(pair.text1, []).append(pair.text2)
    out = []
    for group in groups:
        texts = list(dict.fromkeys([*group.faq.texts, *group.paraphrases]))
        for query in dict.fromkeys([*group.paraphrases, *group.faq.similar_questions]):
            positives = [t for t in group.faq.texts if t != query]
            if positives:
                out.append(Example(query, positives, [t for t in mined.get(query, []) if t not in texts],
                                   f"{bench.name}:group"))
    return out


def build_examples(settings: Settings, recipe: dict, run_dir: Path, progress: bool = True) -> list[Example]:
    """Every example of the recipe, built once per run directory (mining takes minutes) and kept there."""
    cache = run_dir / "examples.jsonl"
    if cache.exists():
        return [Example(**json.loads(line)) for line in cache.open(encoding="utf-8")]
    examples: list[Example] = []
    pairs: list[Pair] = []
    for corpus in recipe["corpora"]:
        read = read_pairs(corpus_file(settings.pairs_dir, corpus, "train"), corpus, recipe["corpus_limit"],
                          recipe["seed"])
        examples += pair_examples(read, corpus)
        pairs += read
    for bench in recipe["benches"]:
        examples += bench_examples(settings, bench, bench in recipe["mine"], recipe["mined_per_query"], progress)
    if recipe["hard_cases"]:
        from .hardcases import recipe_cases

        examples += case_examples(recipe_cases(settings, recipe, pairs))
    dev_hard_cases(settings, recipe, run_dir)  # kept beside the examples: a lent GPU machine has no generator
    if not examples:
        raise ModelError("the recipe gives no training examples: name a corpus (--corpus) or a bench (--bench)")
    partial = cache.with_suffix(".part")
    with partial.open("w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(json.dumps(example.__dict__, ensure_ascii=False) + "\n")
    partial.rename(cache)
    return examples


def dev_hard_cases(settings: Settings, recipe: dict, run_dir: Path) -> dict[str, list[Pair]]:
    """Per bench of `dev_hard_cases`, the generated hard cases of its dev groups whose cosine AUC the dev evaluation
    logs; kept in the run directory."""
    out = {}
    for bench, sources in recipe["dev_hard_cases"].items():
        cache = run_dir / f"dev-hard-cases-{bench}-{sources}.tsv"
        if not cache.exists():
            write_pair_cache(cache, hard_case_pairs(settings, bench, sources))
        out[bench] = read_pair_cache(cache)
    return out


def _count_sources(examples: list[Example]) -> dict:
    out: dict[str, dict[str, int]] = {}
    for e in examples:
        counts = out.setdefault(e.source, {"examples": 0, "with_hard_negatives": 0})
        counts["examples"] += 1
        counts["with_hard_negatives"] += bool(e.negatives)
    return out


def step_texts(examples: list[Example], batch: list[int], hard: int, fill: list[str],
               rng: random.Random) -> tuple[list[str], list[str], list[set[str]]]:
    """(queries, documents, each query's positives): the documents are one positive per query, in query
    order, then `hard` negatives per query (its own hard ones first, random texts to make up the count)."""
    queries, docs, negatives, positive_sets = [], [], [], []
    for i in batch:
        example = examples[i]
        queries.append(example.query)
        docs.append(rng.choice(example.positives))
        positive_sets.append({example.query, *example.positives})
        chosen = rng.sample(example.negatives, min(hard, len(example.negatives)))
        while len(chosen) < hard:
            text = rng.choice(fill)
            if text not in positive_sets[-1] and text not in chosen:
                chosen.append(text)
        negatives += chosen
    return queries, docs + negatives, positive_sets


def fit(settings: Settings, recipe: dict, run_dir: Path, progress: bool = True,
        stop_after: int | None = None) -> dict | None:
    """Train (or resume) the run in `run_dir`; the training record, or None when stopped after `stop_after` steps."""
    import torch
    import torch.nn.functional as F
    from transformers import BertModel, get_linear_schedule_with_warmup

    from ..models.onnx import load_tokenizer

    check_recipe(run_dir, recipe)
    started = time.monotonic()
    examples = build_examples(settings, recipe, run_dir, progress)
    fill = sorted({t for e in examples for t in e.positives})
    torch.manual_seed(recipe["seed"])
    if recipe["init"]:
        model, tokenizer_file = load_trained(settings, recipe["init"], BertModel, task="embedding",
                                             add_pooling_layer=False)
    else:
        model, tokenizer_file = load_base(settings, BertModel, add_pooling_layer=False)
    tokenizer = load_tokenizer(tokenizer_file, recipe["max_tokens"])
    tokenizer.enable_padding(pad_to_multiple_of=8)
    model.embeddings.word_embeddings.weight.requires_grad_(not recipe["freeze_word_embeddings"])
    dev = device()
    model.to(dev)
    per_epoch = math.ceil(len(examples) / recipe["batch_size"])
    total = per_epoch * recipe["epochs"]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe["lr"],
                                  weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, int(total * recipe["warmup"])), total)
    bf16 = recipe["bf16"]

    def embed(texts: list[str]):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = model(**encode(tokenizer, texts, dev)).last_hidden_state[:, 0]
        return F.normalize(hidden.float(), dim=-1)

    def encode_eval(texts: list[str]) -> np.ndarray:
        model.eval()
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.no_grad():
            for start in range(0, len(order), 256):
                idx = order[start:start + 256]
                out[idx] = embed([texts[i] for i in idx]).cpu().numpy()
        return out

    cache: dict = {}
    hard_dev = dev_hard_cases(settings, recipe, run_dir)

    def evaluate_dev() -> dict:
        out = {name: dense_recall(encode_eval, bench_path(settings, name), "dev", sample, recipe["seed"],
                                  cache=cache)
               for name, sample in recipe["dev"].items()}
        for name, pairs in hard_dev.items():
            cosines = pair_cosines(encode_eval, pairs)
            out[f"{name} hard cases"] = {"pairs": len(pairs),
                                         "auc": metrics(cosines, np.array([p.label for p in pairs]), 0.0)["auc"]}
        return out

    order: tuple[int, list[int]] = (-1, [])

    def step_loss(step: int):
        nonlocal order
        epoch, index = divmod(step, per_epoch)
        if order[0] != epoch:
            shuffled = list(range(len(examples)))
            random.Random(recipe["seed"] + epoch).shuffle(shuffled)
            order = (epoch, shuffled)
        batch = order[1][index * recipe["batch_size"]:(index + 1) * recipe["batch_size"]]
        rng = random.Random(recipe["seed"] * 1_000_003 + step)  # a step's draws depend on the step alone
        queries, docs, positive_sets = step_texts(examples, batch, recipe["hard_negatives"], fill, rng)
        scores = embed(queries) @ embed(docs).T / recipe["temperature"]
        mask = torch.tensor([[j != i and docs[j] in positive_sets[i] for j in range(len(docs))]
                             for i in range(len(queries))], device=dev)
        scores = scores.masked_fill(mask, float("-inf"))
        return F.cross_entropy(scores, torch.arange(len(queries), device=dev))

    seconds = run_steps(run_dir, model, optimizer, schedule, total, step_loss, evaluate_dev,
                        checkpoint_every=recipe["checkpoint_every"], eval_every=recipe["eval_every"],
                        desc="training embedder", progress=progress, stop_after=stop_after)
    if seconds is None:
        return None
    return finish(model, run_dir / FINAL, {"recipe": recipe, "examples": len(examples), "steps": total},
                  seconds, started, _count_sources(examples), evaluate_dev())


def export_embedder(settings: Settings, name: str, run_dir: Path, quantization: str = "dynamic",
                    calibration_size: int = 256) -> dict:
    """The final weights of a run as ONNX (fp32, and INT8 as `model_int8`) in the model cache, and its manifest in
    onnx_models/. Dynamic INT8 (the default) runs one text at a time (es_faq/search/embed.py, RUN_ALONE), static
    INT8 is calibrated on `calibration_size` of the run's texts and runs in batches; either way a text's vector
    does not depend on its batch-mates."""
    from ..models.export import onnx_export
    from ..models.manifest import Manifest
    from ..models.onnx import load_tokenizer
    from ..models.quantize import layout, quantize

    final = run_dir / FINAL
    if not (final / "training.json").exists():
        raise ModelError(f"{run_dir} has no finished training; run `es-faq train embedder {name}` first")
    trained = json.loads((final / "training.json").read_text(encoding="utf-8"))
    recipe = trained["recipe"]
    base = Manifest.load(BASE_MODEL)
    tokenizer_file = base.file(settings, "tokenizer")
    tokenizer, calibration = None, []
    if quantization == "static":
        tokenizer = load_tokenizer(tokenizer_file, min(settings.embed_max_tokens, recipe["max_tokens"]))
        texts = sorted({t for e in build_examples(settings, recipe, run_dir, False) for t in e.positives})
        calibration = random.Random(recipe["seed"]).sample(texts, min(calibration_size, len(texts)))

    def export(tmp: Path, staged: Path) -> dict[str, Path]:
        files = onnx_export(final, staged, "feature-extraction", int8=False)
        files["model_int8"] = quantize(files["model"], staged / "model_int8.onnx", quantization, tokenizer,
                                       calibration, ranges="percentile", length=settings.embed_max_tokens)
        return files

    record = install(settings, name, export, tokenizer_file, lambda: {**trained, **layout(quantization)})
    register(name, {"task": "embedding",
                    "description": "bi-encoder fine-tuned by `es-faq train embedder` from "
                                   f"{recipe.get('init') or 'bge-small-zh-v1.5'} "
                                   f"(InfoNCE, in-batch and hard negatives), {quantization} INT8",
                    "license": "MIT (base weights); see training_data for the terms of the data it learned from",
                    "training_data": with_init_data(training_data(recipe), recipe)},
             recipe, record, {"dims": base.data["dims"], "pooling": "cls", "normalize": True,
                              "quantization": f"int8-{quantization}", "query_prefix": ""})
    return record


def train_embedder(settings: Settings, name: str, recipe: dict, progress: bool = True) -> dict:
    """Fit (resuming a run of the same name), then export; what `es-faq train embedder` runs."""
    run_dir = settings.home / "train-runs" / name
    fit(settings, recipe, run_dir, progress)
    return export_embedder(settings, name, run_dir)


def requantize_embedder(settings: Settings, source: str, name: str) -> Path:
    """The embedder es-faq trained and shipped as `source` (static INT8), shipped again as onnx_models/<name>/ in
    dynamic INT8, which es-faq runs one text at a time (es_faq/search/embed.py, RUN_ALONE): the shipped weights
    are dequantized (es_faq/train/base.py), exported to fp32 and quantized per channel again, which gives back the
    same int8 weights; only how activations are quantized changes."""
    from transformers import BertModel

    from ..models.export import onnx_export
    from ..models.manifest import MANIFEST_DIR, Manifest
    from ..models.quantize import QUANTIZED_OPS, quantize, ship_derived

    base = Manifest.load(source)
    model, tokenizer_file = load_trained(settings, source, BertModel, task="embedding", add_pooling_layer=False)
    target = MANIFEST_DIR / name
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=target.parent) as tmp:
        model.save_pretrained(Path(tmp) / "weights")
        fp32 = onnx_export(Path(tmp) / "weights", Path(tmp) / "onnx", "feature-extraction", int8=False)["model"]
        shutil.move(quantize(fp32, Path(tmp) / "model_int8.onnx", "dynamic"), target / "model_int8.onnx")
    ship_derived(base, name, tokenizer_file,
                 description=f"{source}'s weights in dynamic INT8 (per-channel MatMul + Gather), run one text at a "
                             "time so that a vector depends on its text only",
                 quantization="int8-dynamic",
                 source={"repo": name, **{k: v for k, v in base.data["source"].items() if k != "repo"},
                         "derived": {"from": source, "from_sha256": base.weights_sha256, "method": "dynamic",
                                     "ops": QUANTIZED_OPS}})
    return target
