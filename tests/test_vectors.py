"""Vectors reused across builds (es_faq/kb/vectors.py), against the real node and the shipped embedder."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import numpy as np
import pytest

from es_faq.kb.faq import read_jsonl
from es_faq.kb.index import build
from es_faq.kb.vectors import VectorCache
from es_faq.search.embed import Embedder

from .conftest import DEMO_FAQS


@pytest.fixture
def cache_settings(es, settings):
    """Settings with a vector cache index of this test's own, deleted afterwards."""
    name = f"test-vectors-{uuid.uuid4().hex[:8]}"
    yield replace(settings, vector_cache_index=name)
    es.options(ignore_status=404).indices.delete(index=name)


def _vectors(es, alias: str) -> dict[str, list[float]]:
    # Elasticsearch 9 leaves vectors out of _source unless asked.
    hits = es.search(index=alias, size=1000, query={"match_all": {}}, source={"exclude_vectors": False})["hits"]["hits"]
    return {f"{h['_id']}/{q['text']}": q["vector"] for h in hits for q in h["_source"]["questions"]}


def test_rebuilding_an_unchanged_kb_embeds_nothing_and_gives_the_same_index(es, cache_settings, analyzer, embedder,
                                                                            alias, tmp_path):
    faqs = list(read_jsonl(DEMO_FAQS))
    first = build(es, cache_settings, iter(faqs), analyzer, embedder, alias=alias, progress=False)
    assert first.vectors_embedded > 0 and first.vectors_reused == 0
    before = _vectors(es, alias)
    second = build(es, cache_settings, iter(faqs), analyzer, embedder, alias=alias, progress=False)
    assert (second.vectors_embedded, second.vectors_reused) == (0, first.questions)
    assert _vectors(es, alias) == before  # bit for bit: a cached vector is what embedding gives


def test_a_changed_text_is_embedded_and_the_rest_reused(es, cache_settings, analyzer, embedder, alias, tmp_path):
    faqs = [json.loads(line) for line in DEMO_FAQS.read_text(encoding="utf-8").splitlines()]
    build(es, cache_settings, read_jsonl(DEMO_FAQS), analyzer, embedder, alias=alias, progress=False)
    faqs[0]["question"] = "这是一个全新的标准问题吗"
    changed = tmp_path / "faqs.jsonl"
    changed.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in faqs), encoding="utf-8")
    report = build(es, cache_settings, read_jsonl(changed), analyzer, embedder, alias=alias, progress=False)
    assert report.vectors_embedded == 1
    assert report.vectors_reused == report.questions - 1


def test_a_load_under_another_embedder_says_what_the_upgrade_cost(es, cache_settings, analyzer, embedder, alias):
    """An embedder upgrade re-embeds every text once; the load report says so, with the count and the time."""
    faqs = list(read_jsonl(DEMO_FAQS))[:12]
    first = build(es, cache_settings, iter(faqs), analyzer, embedder, alias=alias, progress=False).as_dict()
    assert first["embed_model"] == embedder.manifest.name and "note" not in first
    other = Embedder(cache_settings, "bge-small-zh-v1.5")
    upgraded = build(es, cache_settings, iter(faqs), analyzer, other, alias=alias, progress=False).as_dict()
    assert upgraded["embed_model_before"] == embedder.manifest.name
    assert upgraded["vectors_embedded"] == first["questions"] and upgraded["vectors_reused"] == 0
    assert upgraded["note"].startswith(f"the embedder changed from {embedder.manifest.name} to bge-small-zh-v1.5: "
                                       f"{first['questions']} question texts were embedded again")


def test_cached_vectors_equal_fresh_ones_in_any_batch(es, cache_settings, embedder):
    texts = ["花呗怎么延期还款", "借呗额度怎么提升", "退货运费谁出", "花呗怎么延期还款"]
    cache = VectorCache(es, cache_settings, embedder)
    stored = cache.encode(texts[:2])
    assert cache.stats.embedded == 2
    mixed = cache.encode(texts)  # two from the cache, one new, one repeated in the batch
    assert (cache.stats.reused, cache.stats.embedded) == (2 + 1, 2 + 1)
    assert np.array_equal(mixed[:2], stored)
    assert np.array_equal(mixed, np.vstack([embedder.encode([t]) for t in texts]))


def test_another_model_or_truncation_never_reuses_a_vector(es, cache_settings, embedder, analyzer):
    text = f"花呗怎么延期还款 {uuid.uuid4().hex}"  # a text no index of the cluster holds
    VectorCache(es, cache_settings, embedder).encode([text])
    shorter = replace(cache_settings, embed_max_tokens=8)
    other = VectorCache(es, shorter, Embedder(shorter))
    other.encode([text])
    assert (other.stats.reused, other.stats.embedded) == (0, 1)
    es.indices.refresh(index=cache_settings.vector_cache_index)
    first = VectorCache(es, cache_settings, embedder)
    assert other.counts() == {first.model_key: 1, other.model_key: 1}
    # The first model's vector is unreachable from this one; its own is of a text no index holds.
    assert other.prune(analyzer) == 2 and first.counts() == {}


def test_prune_deletes_the_vectors_no_index_uses(es, cache_settings, analyzer, embedder, alias):
    # A load that failed after embedding (a bad line, a rejected document, a kill) left its vectors in
    # the cache for good: prune deleted only other models' (cache 1 -> 9.3 MB after one bad file).
    report = build(es, cache_settings, read_jsonl(DEMO_FAQS), analyzer, embedder, alias=alias, progress=False)
    cache = VectorCache(es, cache_settings, embedder)
    cache.encode([f"一次失败的导入嵌入的问题 {uuid.uuid4().hex}", f"另一个从未上线的问题 {uuid.uuid4().hex}"])
    demo_texts = {text for faq in read_jsonl(DEMO_FAQS) for text in faq.texts}
    assert cache.counts() == {cache.model_key: len(demo_texts) + 2}
    assert cache.prune(analyzer) == 2
    assert cache.counts() == {cache.model_key: len(demo_texts)} and report.questions == len(demo_texts)
    again = build(es, cache_settings, read_jsonl(DEMO_FAQS), analyzer, embedder, alias=alias, progress=False)
    assert again.vectors_embedded == 0  # the served texts kept theirs


def test_cache_off_embeds_everything(es, cache_settings, embedder):
    off = replace(cache_settings, vector_cache_enabled=False)
    cache = VectorCache(es, off, embedder)
    cache.encode(["花呗怎么延期还款"])
    cache.encode(["花呗怎么延期还款"])
    assert (cache.stats.reused, cache.stats.embedded) == (0, 2)
    assert not es.indices.exists(index=off.vector_cache_index)
