"""Shared fixtures: a real Elasticsearch (ES_FAQ_ES_URL, started by scripts/test) and the real model.

Every test that writes to Elasticsearch does so under an alias of its own, so the suite can run
against any cluster without touching other data.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from es_faq.analyze import Analyzer
from es_faq.config import REPO_ROOT, load_settings
from es_faq.embed import Embedder
from es_faq.es import cluster_health, make_client
from es_faq.index import build
from es_faq.kb import read_jsonl
from es_faq.pipeline import Searcher

DEMO = REPO_ROOT / "demo"
DEMO_FAQS = REPO_ROOT / "demo" / "faqs.jsonl"
DEMO_QUERIES = REPO_ROOT / "demo" / "queries.jsonl"


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
def trained_reranker(settings, es):
    """A small cross-encoder trained for this session on the demo knowledge base (CPU, about a minute):
    the model the rerank tests run. Its quality is measured in docs/benchmarks.md, not here."""
    pytest.importorskip("torch", reason="the [train] extra is not installed (scripts/test installs it)")
    from es_faq.models import MANIFEST_DIR
    from es_faq.train.reranker import train_reranker

    name = f"test-reranker-{uuid.uuid4().hex[:8]}"
    try:
        record = train_reranker(settings, DEMO, name, progress=False, limit=16, batch_size=4, group_size=4)
        yield name, record
    finally:
        (MANIFEST_DIR / f"{name}.json").unlink(missing_ok=True)
        shutil.rmtree(settings.models_path / name, ignore_errors=True)
        _drop_alias_family(es, "bench-demo")


@pytest.fixture(scope="session")
def rerank_settings(settings, trained_reranker):
    return settings.replace(rerank_model=trained_reranker[0])


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
