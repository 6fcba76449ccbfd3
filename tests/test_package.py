"""The installable package: `python -m build` makes a wheel carrying mappings/, analyzers/ and the model
manifests (with the shipped cross-encoder) as package data; installed into a fresh venv outside the
checkout, it loads the demo knowledge base and answers a search against the real node.

The fresh venv borrows this venv's installed dependencies (the same pins) through a .pth line instead of
installing them again: a full install of numpy, scipy, onnxruntime... took over 10 minutes on the busy
2-core machine. Only the wheel is installed, with --no-deps; `pip check` then proves that what it
requires is there. A minute or two on 2 cores, hence `slow`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import pytest

from es_faq.config.load import as_env
from es_faq.config.settings import REPO_ROOT
from es_faq.search.pipeline import Searcher
from tests.conftest import DEMO_FAQS, _drop_alias_family

pytestmark = [pytest.mark.slow, pytest.mark.requires_es]

# What the wheel is built from; anything else in the checkout (bench/, tests/, .venv) must not matter.
SOURCES = ["setup.py", "setup.cfg", "pyproject.toml", "README.md", "es_faq", "mappings", "analyzers", "onnx_models"]
PACKAGE_DATA = ["es_faq/mappings/faq.json", "es_faq/mappings/querylog.json", "es_faq/analyzers/user_words.txt",
                "es_faq/analyzers/synonyms.txt", "es_faq/onnx_models/reranker-zh.json",
                "es_faq/onnx_models/bge-small-zh-v1.5-q.json", "es_faq/onnx_models/reranker-zh/model_int8.onnx",
                "es_faq/onnx_models/reranker-zh/decision.json", "es_faq/api/openapi.json"]
# Run in the new venv: the requirements of the installed wheel that its environment does not meet.
REQUIREMENTS_MET = """
import json
from importlib.metadata import PackageNotFoundError, requires, version
from packaging.requirements import Requirement
unmet = []
for line in requires("es-faq"):
    req = Requirement(line)
    if req.marker and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        if version(req.name) not in req.specifier:
            unmet.append(line)
    except PackageNotFoundError:
        unmet.append(line)
print(json.dumps(unmet))
"""
QUERY = "小橙华怎么分期还款"  # a homophone typo of 小橙花: the pinyin data must have come along too


def _tracked(dest: Path) -> None:
    """Copy the files git tracks under SOURCES (as a clean clone has them) into dest."""
    listed = subprocess.run(["git", "ls-files", "-z", *SOURCES], cwd=REPO_ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)


def _run(args: list, cwd: Path, env: dict, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[:3]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def names(es):
    """An alias and dictionary and vocabulary indices of this test's own; deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    made = {"alias": f"test-wheel-{tag}", "dict_index": f"test-wheel-dict-{tag}",
            "vocab_index": f"test-wheel-vocab-{tag}"}
    yield made
    _drop_alias_family(es, made["alias"])
    es.options(ignore_status=404).indices.delete(index=f"{made['dict_index']},{made['vocab_index']}")


def test_the_wheel_serves_from_outside_the_checkout(tmp_path, settings, es, embedder, names):
    source = tmp_path / "source"
    _tracked(source)
    dist = tmp_path / "dist"
    # --no-isolation: the running venv's setuptools (the test extra pins it), no download of a build env.
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, source], tmp_path,
         dict(os.environ))
    wheel = next(dist.glob("es_faq-*.whl"))
    packed = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in PACKAGE_DATA if n not in packed], "package data missing from the wheel"
    assert not any(n.startswith(("mappings/", "analyzers/", "onnx_models/")) for n in packed)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, dict(os.environ))
    own = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    tmp_path, dict(os.environ)).strip())
    # Appended after the venv's own site-packages, and its .pth files are not run: the checkout's
    # editable install of es_faq stays invisible, while numpy & co. are found.
    borrowed = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (own / "borrowed-dependencies.pth").write_text("".join(f"{p}\n" for p in borrowed))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ES_FAQ_", "PYTHON", "VIRTUAL_ENV"))}
    python = venv / "bin" / "python"
    # This venv's pip puts the wheel alone into the new venv's site-packages (--target never touches
    # the running environment); the CLI then runs as `python -m es_faq` of the new venv.
    _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
          "--target", own, wheel], tmp_path, clean)
    unmet = _run([python, "-c", REQUIREMENTS_MET], tmp_path, clean)
    assert unmet.strip() == "[]", f"the wheel's requirements not met: {unmet}"

    elsewhere = tmp_path / "elsewhere"  # no checkout above it: nothing can be found by walking up
    elsewhere.mkdir()
    shutil.copy(DEMO_FAQS, elsewhere / "faqs.jsonl")
    env = {**clean, **as_env(settings, omit=("admin_token",)), "ES_FAQ_INDEX_ALIAS": names["alias"],
           "ES_FAQ_DICT_INDEX": names["dict_index"], "ES_FAQ_VOCAB_INDEX": names["vocab_index"]}
    cli = [python, "-m", "es_faq"]
    where = json.loads(_run([python, "-c", "import json, es_faq.config.settings as c, es_faq.models.manifest as m; "
                             "print(json.dumps([c.DATA_ROOT.as_posix(), m.MANIFEST_DIR.as_posix()]))"], elsewhere, env))
    assert all(path.startswith(venv.as_posix()) for path in where), where

    imported = json.loads(_run([*cli, "dict", "import"], elsewhere, env))  # the seeds from the wheel's analyzers/
    assert imported["added"]["word"] > 0 and not imported["rejected"]
    _run([*cli, "models", "pull", settings.embed_model, settings.rerank_model], elsewhere, env)  # manifests found
    _run([*cli, "index", "load", "faqs.jsonl"], elsewhere, env)
    found = json.loads(_run([*cli, "search", QUERY, "-k", "3", "--debug"], elsewhere, env))

    assert found["analysis"]["corrections"] == [["小橙华", "小橙花"]]
    assert found["decision"]["action"] in ("answer", "suggest", "no_match")
    # The same index searched from the checkout gives the same FAQs.
    here = Searcher(settings.replace(dict_index=names["dict_index"], vocab_index=names["vocab_index"]), es, embedder)
    expected = here.search(QUERY, 3, index=names["alias"])
    assert [h["faq_id"] for h in found["hits"]] == [h.faq_id for h in expected.hits]
