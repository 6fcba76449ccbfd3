"""Search through the library against the demo knowledge base on the real node."""

import json

import pytest

from es_faq.errors import IndexMissing, InvalidInput
from tests.conftest import DEMO_QUERIES


def _demo_queries():
    """The demo's paraphrase queries (its near-misses have no gold FAQ)."""
    rows = [json.loads(line) for line in DEMO_QUERIES.open(encoding="utf-8")]
    return [r for r in rows if r.get("kind", "paraphrase") == "paraphrase"]


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
def test_modes_find_the_faq_of_a_reworded_question(searcher, demo_alias, mode):
    result = searcher.search("亲，我支付密码给忘了，要怎么弄", 5, mode, index=demo_alias)
    assert result.hits, mode
    assert "demo-001" in [h.faq_id for h in result.hits]
    assert len({h.faq_id for h in result.hits}) == len(result.hits)  # one hit per FAQ


def test_hybrid_recall_on_held_out_demo_queries(searcher, demo_alias):
    """Held-out paraphrases (demo/queries.jsonl): hybrid must place the gold FAQ in the top 5 for most."""
    queries = _demo_queries()
    found = {mode: sum(row["relevant"][0] in [h.faq_id for h in searcher.search(row["query"], 5, mode,
                                                                                  index=demo_alias).hits]
                       for row in queries) for mode in ("bm25", "hybrid")}
    assert found["hybrid"] >= 0.8 * len(queries)
    assert found["hybrid"] >= found["bm25"]


def test_hit_names_the_question_text_that_matched(searcher, demo_alias):
    hit = searcher.search("付款密码想不起来了咋办", 1, "hybrid", index=demo_alias).hits[0]
    assert hit.faq_id == "demo-001"
    assert hit.matched["lexical"]["text"] == "付款密码想不起来了咋办"
    assert hit.matched["vector"]["text"] == "付款密码想不起来了咋办"
    assert hit.answer.startswith("请在「我的」")


def test_category_filter(searcher, demo_alias):
    hits = searcher.search("怎么还款", 10, "hybrid", index=demo_alias, category="退货退款").hits
    assert hits and {h.category for h in hits} == {"退货退款"}


def test_request_is_one_hybrid_body(searcher, demo_alias):
    result = searcher.search("花呗怎么延期还款", 3, "hybrid", index=demo_alias)
    assert set(result.request) >= {"query", "knn", "size"}
    assert result.request["knn"]["boost"] == searcher.settings.vector_boost
    assert result.timings_ms["total"] > 0


@pytest.mark.parametrize("query, k, message", [
    ("", 5, "empty"), ("   ", 5, "empty"), (None, 5, "must be a string"), (["x"], 5, "must be a string"),
    ("还款", 0, "k must be"), ("还款", 101, "k must be"), ("还款", "5", "k must be"), ("还款", True, "k must be"),
])
def test_invalid_input(searcher, demo_alias, query, k, message):
    with pytest.raises(InvalidInput, match=message):
        searcher.search(query, k, index=demo_alias)


def test_over_long_query_is_rejected_and_long_one_answered(searcher, demo_alias, settings):
    with pytest.raises(InvalidInput, match="limit"):
        searcher.search("还" * (settings.query_max_chars + 1), 5, index=demo_alias)
    result = searcher.search("花呗怎么延期还款" * 1000, 5, index=demo_alias)
    assert result.analysis.truncated and result.hits


def test_missing_index_says_how_to_load(searcher):
    with pytest.raises(IndexMissing, match="es-faq index load"):
        searcher.search("还款", 5, index="test-no-such-alias")


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_fused_hybrid_is_one_msearch_with_score_breakdown(searcher, demo_alias, fusion):
    fused = type(searcher)(searcher.settings.replace(fusion=fusion), searcher.client, searcher.embedder,
                           searcher.analyzer)
    result = fused.search("付款密码想不起来了咋办", 5, "hybrid", index=demo_alias)
    assert set(result.request) == {"lexical", "vector"}
    top = result.hits[0]
    assert top.faq_id == "demo-001"
    assert {"lexical", "vector", "fused"} <= set(top.scores)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


def test_unknown_fusion_is_a_config_error(settings):
    from es_faq.errors import ConfigError

    with pytest.raises(ConfigError, match="choose sum, rrf or weighted"):
        settings.replace(fusion="max")
