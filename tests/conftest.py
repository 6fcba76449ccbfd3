"""Shared fixtures: a real Elasticsearch (ES_FAQ_ES_URL, started by scripts/test) and the real model.

Every test that writes to Elasticsearch does so under an alias of its own, so the suite can run
against any cluster without touching other data. A test that needs a node (it uses the `es` fixture,
or is marked `requires_es`) is skipped when none is reachable, so the unit tests run anywhere;
scripts/test passes --require-es, which turns such a skip into the failure it is in CI.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

import pytest

from es_faq.config.load import load_settings
from es_faq.config.settings import REPO_ROOT
from es_faq.engine.client import cluster_health, make_client
from es_faq.errors import EngineUnavailable
from es_faq.kb.faq import read_jsonl
from es_faq.kb.index import build
from es_faq.search.analyze import Analyzer
from es_faq.search.embed import Embedder
from es_faq.search.pipeline import Searcher

DEMO = REPO_ROOT / "demo"
DEMO_FAQS = REPO_ROOT / "demo" / "faqs.jsonl"
DEMO_QUERIES = REPO_ROOT / "demo" / "queries.jsonl"


def pytest_addoption(parser):
    parser.addoption("--require-es", action="store_true",
                     help="run the tests that need Elasticsearch even when none is reachable (they fail): for CI")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "es" in getattr(item, "fixturenames", ()):  # directly or through another fixture
            item.add_marker(pytest.mark.requires_es)


@functools.cache
def _no_node() -> str | None:
    """Why no Elasticsearch can be used, or None; asked once per session."""
    settings = load_settings()
    try:
        cluster_health(make_client(settings), settings, timeout_s=1)
    except EngineUnavailable as exc:
        return exc.message
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("requires_es") and not item.config.getoption("--require-es"):
        reason = _no_node()
        if reason:
            pytest.skip(f"needs Elasticsearch: {reason}")


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture(scope="session")
def es(settings):
    client = make_client(settings)
    cluster_health(client, settings)  # fails loudly with the "es-faq engine up" hint
    return client


@pytest.fixture(scope="session")
def embedder(settings):
    return Embedder(settings)


@pytest.fixture(scope="session")
def analyzer(settings):
    return Analyzer(settings)


@pytest.fixture(scope="session")
def searcher(settings, es, embedder, analyzer):
    return Searcher(settings, es, embedder, analyzer)


def _drop_alias_family(es, alias: str) -> None:
    # Wildcard deletes are refused (action.destructive_requires_name), so name each index.
    names = [row["index"] for row in es.cat.indices(index=f"{alias}-*", format="json", h="index").body]
    if names:
        es.options(ignore_status=404).indices.delete(index=",".join(names))


def drop_query_log(es, prefix: str) -> None:
    """Delete a query log's daily indices and its index template."""
    _drop_alias_family(es, prefix)
    es.options(ignore_status=404).indices.delete_index_template(name=prefix)


@pytest.fixture
def alias(es):
    """A fresh alias name for one test; its indices are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    _drop_alias_family(es, name)


@pytest.fixture(scope="session")
def demo_alias(es, settings, embedder, analyzer):
    """The demo knowledge base, indexed once for the session."""
    name = f"test-demo-{uuid.uuid4().hex[:8]}"
    build(es, settings, read_jsonl(DEMO_FAQS), analyzer, embedder, alias=name, progress=False)
    yield name
    _drop_alias_family(es, name)


@pytest.fixture(scope="session")
def rerank_settings(settings):
    """Settings whose reranker is the shipped cross-encoder (onnx_models/reranker-zh), as on a fresh clone."""
    return settings


@pytest.fixture
def tmp_jsonl(tmp_path):
    """Write lines (str or bytes) to a JSONL file and return its path."""
    def write(lines, name="faqs.jsonl") -> Path:
        path = tmp_path / name
        with path.open("wb") as fh:
            for line in lines:
                fh.write(line if isinstance(line, bytes) else line.encode("utf-8"))
                fh.write(b"\n")
        return path
    return write
