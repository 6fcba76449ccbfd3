"""What both trainers share: where a bench is, the device, batches of token tensors, and installing a
trained model (`install`, `register`).

Either trainer's result is a model directory in the cache (ONNX fp32, INT8 copy, tokenizer,
training.json) that replaces the old one only when complete, and its manifest in
`onnx_models/<name>.json`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..config.settings import Settings
from ..errors import ModelError
from ..models.files import sha256_of
from ..models.manifest import RECIPE_FILE, Manifest


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


# Terms of the data a model was trained on (../shared/data/pairs/README.md, faq-bench/README.md).
DATA_TERMS = {
    "bq": "BQ corpus (HIT-SZ ICRC; LUGE agreement): non-commercial research or teaching only, credit HIT-SZ ICRC",
    "atec": "ATEC 2018 competition data (Ant Financial): terms not stated",
    "atec-preprocessed": "ATEC 2018 competition data (Ant Financial): terms not stated",
    "afqmc": "AFQMC (Ant Financial / CLUE): terms not stated",
    "chip2019": "CHIP 2019 evaluation data (Ping An): terms not stated",
    "diac": "DIAC 2019 question groups (public copy apple55bc/AdvAttack): no licence stated, competition data "
            "for research",
}


def training_data(recipe: dict) -> list[dict]:
    """What the manifest says a model was trained on, with each corpus's terms."""
    parts = [{"corpus": c, "kind": "pairs", "terms": DATA_TERMS.get(c, "unknown: check before use")}
             for c in recipe["corpora"]]
    parts += [{"corpus": b, "kind": "faq-bench train groups", "terms": DATA_TERMS.get(b, "unknown: check before use")}
              for b in recipe["benches"]]
    return parts


def with_init_data(parts: list[dict], recipe: dict) -> list[dict]:
    """A model continued from another (init), or taught by one (teacher), learned from that one's data too,
    under its terms."""
    from ..models.manifest import Manifest

    out = list(parts)
    for source in dict.fromkeys(recipe[key] for key in ("init", "teacher") if recipe.get(key)):
        seen = {(p["corpus"], p["kind"]) for p in out}
        out += [p for p in Manifest.load(source).data.get("training_data", []) if (p["corpus"], p["kind"]) not in seen]
    return out
