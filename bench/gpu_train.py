"""Train the cross-encoder or the embedder on a lent GPU in one device call, and bring its weights back.

The device machine has torch and transformers but no Elasticsearch, no jieba and no ../shared, and at most
64 MiB travels each way. So the run's data is built here (`pack`: for the cross-encoder the corpora, the dev
pairs, the mined bench pairs and the hard cases; for the embedder its examples and the benches it is evaluated
on; into one archive), trained there with es-faq's own `fit` (`run`), and its weights come back in fp16 without
the word embeddings, which the recipe keeps frozen; `collect` puts them back onto the same starting point here
and exports the run like any other (`export_reranker` / `export_embedder`: ONNX fp32 + INT8, static for a
cross-encoder, dynamic for an embedder).

  python bench/gpu_train.py pack NAME [--task embedder] --recipe '{"epochs": 3, ...}'  # here: .gpu/payload.tar.xz
  (device) python3 bench/gpu_train.py run .gpu/payload.tar.xz $OUT --budget 300
  python bench/gpu_train.py collect NAME DIR                              # here: DIR holds what came back

`run` first times `--probe` steps; when the whole recipe would take longer than `--budget` seconds of training,
it starts again with as many epochs as fit (at least one), and says so. Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Per task: the trainer's module, the transformers class it trains, the manifest task of a starting point.
TASKS = {"reranker": ("es_faq.train.cross_encoder", "BertForSequenceClassification", "reranker", {"num_labels": 1}),
         "embedder": ("es_faq.train.embedder", "BertModel", "embedding", {"add_pooling_layer": False})}
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"  # under `bert.` in the cross-encoder
SHARD_BYTES = 14 * 2**20  # what comes back: 16 MiB a file at most
RECORD = "record.tar"


def _settings():
    from es_faq.config.load import load_settings

    return load_settings()


def _trainer(task: str):
    import importlib

    return importlib.import_module(TASKS[task][0])


def _data(settings, recipe: dict, run_dir: Path, progress: bool = True) -> list:
    """The run's training items (pairs or examples), built and cached in run_dir by the task's own trainer."""
    trainer = _trainer(recipe["task"])
    if recipe["task"] == "reranker":
        return trainer.build_pairs(settings, recipe, run_dir, progress)
    return trainer.build_examples(settings, recipe, run_dir, progress)


def pack(name: str, task: str, options: dict, out: Path) -> None:
    from es_faq.train.steps import check_recipe

    settings = _settings()
    recipe = _trainer(task).recipe_of(**options)
    if not recipe["freeze_word_embeddings"] or not recipe["init"]:
        raise SystemExit("pack: the weights come back without the word embeddings, so the recipe must keep them "
                         "frozen and start from a shipped model (init); set both")
    run_dir = settings.home / "train-runs" / name
    check_recipe(run_dir, recipe)  # the run directory's recipe.json, as `es-faq train` writes it
    items = _data(settings, recipe, run_dir)  # mines and generates here, once; cached in run_dir
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "payload.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(run_dir / "recipe.json", f"run/{name}/recipe.json")
        for cache in sorted([*run_dir.glob("*.tsv"), *run_dir.glob("examples.jsonl")]):
            tar.add(cache, f"run/{name}/{cache.name}")
        if task == "reranker":
            for corpus in recipe["corpora"]:
                tar.add(settings.pairs_dir / corpus / "train.tsv", f"pairs/{corpus}/train.tsv")
            for corpus in recipe["dev"]:
                tar.add(settings.pairs_dir / corpus / "dev.tsv", f"pairs/{corpus}/dev.tsv")
        else:  # dense recall over each dev bench's FAQs
            for bench in recipe["dev"]:
                for part in ("faqs.jsonl", "queries.jsonl"):
                    tar.add(settings.bench_dir / bench / part, f"benches/{bench}/{part}")
    print(f"{archive}: {archive.stat().st_size / 2**20:.1f} MiB, {len(items)} {task} items an epoch")


def run(payload: Path, out: Path, budget: float, probe: int, work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    with tarfile.open(payload) as tar:
        tar.extractall(work, filter="data")
    os.environ["ES_FAQ_HOME"] = str(work / "home")
    os.environ["ES_FAQ_PAIRS_DIR"] = str(work / "pairs")
    os.environ["ES_FAQ_BENCH_DIR"] = str(work / "benches")
    import torch

    from es_faq.train.steps import CHECKPOINT

    print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
          torch.cuda.get_device_name() if torch.cuda.is_available() else "", flush=True)
    settings = _settings()
    (name,) = [p.name for p in (work / "run").iterdir()]
    run_dir = settings.home / "train-runs" / name
    run_dir.parent.mkdir(parents=True)
    shutil.move(work / "run" / name, run_dir)
    recipe = json.loads((run_dir / "recipe.json").read_text())
    trainer = _trainer(recipe["task"])
    fit, final = trainer.fit, trainer.FINAL
    per_epoch = math.ceil(len(_data(settings, recipe, run_dir, False)) / recipe["batch_size"])

    started = time.monotonic()
    fit(settings, recipe, run_dir, progress=False, stop_after=probe)
    per_step = torch.load(run_dir / CHECKPOINT, weights_only=False)["seconds"] / probe
    fits = max(1, int(budget / (per_step * per_epoch)))
    print(f"probe: {probe} steps, {per_step * 1000:.1f} ms a step, {per_epoch} steps an epoch, "
          f"{fits} epochs fit {budget:.0f} s", flush=True)
    if fits < recipe["epochs"]:
        print(f"the recipe's {recipe['epochs']} epochs do not fit: training {fits} instead", flush=True)
        recipe = {**recipe, "epochs": fits}
        for stale in (CHECKPOINT, "recipe.json", "log.jsonl"):
            (run_dir / stale).unlink(missing_ok=True)
    record = fit(settings, recipe, run_dir, progress=False)
    print(f"trained in {time.monotonic() - started:.0f} s wall: {json.dumps(record['dev'])}", flush=True)

    from safetensors.torch import load_file, save_file

    weights = load_file(run_dir / final / "model.safetensors")
    weights.pop(next(k for k in weights if k.endswith(WORD_EMBEDDINGS)))
    shards: list[dict] = [{}]
    size = 0
    for key, value in weights.items():
        half = value.to(torch.float16).contiguous()
        if shards[-1] and size + half.nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = half
        size += half.nbytes
    out.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(shards):
        save_file(part, out / f"weights-{i}.safetensors")
    with tarfile.open(out / RECORD, "w") as tar:
        for path in ("recipe.json", "log.jsonl", f"{final}/config.json", f"{final}/training.json"):
            tar.add(run_dir / path, path)
    print(f"{len(shards)} weight files and {RECORD} in {out}", flush=True)


def collect(name: str, back: Path) -> None:
    import torch
    import transformers
    from safetensors.torch import load_file

    from es_faq.train.base import load_trained

    settings = _settings()
    run_dir = settings.home / "train-runs" / name
    packed = json.loads((run_dir / "recipe.json").read_text())
    trainer = _trainer(packed["task"])
    module, model_class, manifest_task, config = TASKS[packed["task"]]
    final = run_dir / trainer.FINAL
    with tarfile.open(back / RECORD) as tar:
        tar.extractall(run_dir, filter="data")
    trained = json.loads((final / "training.json").read_text())
    if {**trained["recipe"], "epochs": packed["epochs"]} != packed:
        raise SystemExit(f"{back} came from another recipe than {run_dir}/recipe.json")
    model, _ = load_trained(settings, trained["recipe"]["init"], getattr(transformers, model_class),
                            task=manifest_task, **config)
    weights = {}
    for part in sorted(back.glob("weights-*.safetensors")):
        weights.update({k: v.to(torch.float32) for k, v in load_file(part).items()})
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if len(missing) != 1 or not missing[0].endswith(WORD_EMBEDDINGS) or unexpected:
        raise SystemExit(f"the weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.save_pretrained(final)
    trained["weights_travelled"] = "fp16, word embeddings left out (frozen: taken from init here)"
    (final / "training.json").write_text(json.dumps(trained, indent=2, ensure_ascii=False) + "\n")
    export = trainer.export_reranker if packed["task"] == "reranker" else trainer.export_embedder
    record = export(settings, name, run_dir)
    print(json.dumps({k: record.get(k) for k in ("pairs", "examples", "steps", "device", "train_seconds", "dev")},
                     indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("name")
    p.add_argument("--task", choices=sorted(TASKS), default="reranker")
    p.add_argument("--recipe", default="{}",
                   help="recipe options as JSON (DEFAULTS in es_faq/train/cross_encoder.py, embedder.py)")
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    r = sub.add_parser("run")
    r.add_argument("payload", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--budget", type=float, default=300.0, help="seconds of training at most")
    r.add_argument("--probe", type=int, default=100)
    r.add_argument("--work", type=Path, default=Path("/tmp/es-faq-gpu"), help="emptied, then the run's home")
    c = sub.add_parser("collect")
    c.add_argument("name")
    c.add_argument("back", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.name, args.task, json.loads(args.recipe), args.out)
    elif args.command == "run":
        run(args.payload, args.out, args.budget, args.probe, args.work)
    else:
        collect(args.name, args.back)


if __name__ == "__main__":
    main()
