"""The es-faq command as a user runs it: a real subprocess against the real node."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import DEMO_FAQS, DEMO_QUERIES, _drop_alias_family


def es_faq(*args, env=None, check=False):
    return subprocess.run([sys.executable, "-m", "es_faq", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, check=check)


def test_search_prints_json_hits(demo_alias):
    out = es_faq("search", "退货要自己出运费吗", "-k", "3", "--index", demo_alias, "--debug", check=True)
    result = json.loads(out.stdout)
    assert len(result["hits"]) == 3
    assert set(result["hits"][0]) == {"faq_id", "question", "answer", "category", "score", "matched", "scores"}
    assert result["mode"] == "hybrid" and result["decision"]["action"] in ("suggest", "no_match")
    assert set(result["stages"]) == {"lexical", "vector", "fused"}
    assert result["es_request"]["knn"]["field"] == "questions.vector"
    assert result["analysis"]["tokens"]


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_a_usage_error(query, demo_alias):
    out = es_faq("search", query, "--index", demo_alias)
    assert out.returncode == 2
    assert "query is empty" in out.stderr


def test_unreachable_engine_is_one_clear_line():
    out = es_faq("search", "还款", env={"ES_FAQ_ES_URL": "http://127.0.0.1:9"})
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "http://127.0.0.1:9" in lines[0] and "es-faq engine up" in lines[0]


def test_index_load_reports_bad_line_and_skip_bad(tmp_jsonl, alias, es):
    path = tmp_jsonl(['{"id": "a", "question": "怎么还款"}', '{"id": "b"', '{"id": "c", "question": "怎么退货"}'])
    out = es_faq("index", "load", str(path), "--alias", alias)
    assert out.returncode != 0 and "line 2: invalid JSON" in out.stderr and "--skip-bad" in out.stderr
    assert "Traceback" not in out.stderr
    out = es_faq("index", "load", str(path), "--alias", alias, "--skip-bad", check=True)
    report = json.loads(out.stdout)
    assert (report["faqs"], report["skipped"]) == (2, 1)
    assert "skipped line 2" in out.stderr
    assert es.count(index=alias)["count"] == 2


def test_eval_prints_one_row_per_mode(tmp_path, es, trained_reranker):
    bench = tmp_path / "demo-bench"
    bench.mkdir()
    shutil.copy(DEMO_FAQS, bench / "faqs.jsonl")
    shutil.copy(DEMO_QUERIES, bench / "queries.jsonl")
    try:
        out = es_faq("eval", "--bench", str(bench), "--split", "test", "--mode", "all",
                     "--json", str(tmp_path / "rows.jsonl"), check=True,
                     env={"ES_FAQ_RERANK_MODEL": trained_reranker[0], "ES_FAQ_ANSWER_THRESHOLD": "1.0"})
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert [r["mode"] for r in rows] == ["bm25", "vector", "hybrid", "rerank"]
        keys = {"bench", "split", "mode", "queries", "R@1", "R@5", "R@10", "R@50", "MRR@10", "p50_ms", "p95_ms",
                "answered", "answer_precision"}
        assert all(set(r) == keys and r["queries"] == 40 for r in rows)
        assert rows[2]["R@10"] >= rows[0]["R@10"]
        assert rows[3]["R@50"] == rows[2]["R@50"]  # reranking reorders the hybrid top, it finds nothing new
        # Only search_mode (hybrid) applies the thresholds; here a finite one lets it answer.
        assert rows[2]["answered"] > 0 and [r["answered"] for r in (rows[0], rows[1], rows[3])] == [0.0] * 3
        assert 0 <= rows[2]["answer_precision"] <= 1
        assert (tmp_path / "rows.jsonl").read_text().count("\n") == 4
        # A second run re-uses the index: no new version is built.
        before = es.cat.indices(index="bench-demo-bench-*", format="json", h="index").body
        es_faq("eval", "--bench", str(bench), "--mode", "bm25", "--limit", "3", check=True)
        assert es.cat.indices(index="bench-demo-bench-*", format="json", h="index").body == before
    finally:
        _drop_alias_family(es, "bench-demo-bench")


def test_models_list_reports_provider():
    rows = json.loads(es_faq("models", "list", check=True).stdout)
    row = next(r for r in rows if r["name"] == "bge-small-zh-v1.5-q")
    assert row["ready"] and row["dims"] == 512 and row["provider"] == "CPUExecutionProvider"
    recipe = next(r for r in rows if r["name"] == "reranker-bq")  # not shipped: trained on demand
    assert recipe["task"] == "reranker"
    if not recipe["ready"]:
        assert "missing" in recipe["problems"][0]


def test_models_export_fails_cleanly_without_hub_or_optimum(tmp_path):
    out = es_faq("models", "export", "BAAI/bge-small-zh-v1.5", "--int8", "--output", str(tmp_path / "x"))
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")  # optimum may log its own line first
    assert "optimum" in out.stderr or "BAAI/bge-small-zh-v1.5" in out.stderr
