"""The es-faq command as a user runs it: a real subprocess against the real node."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from es_faq.search.decide import DEFAULT_FEATURES, Calibration
from tests.conftest import DEMO_FAQS, DEMO_QUERIES, _drop_alias_family


def es_faq(*args, env=None, check=False):
    return subprocess.run([sys.executable, "-m", "es_faq", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, check=check)


def test_search_prints_json_hits(demo_alias):
    out = es_faq("search", "退货要自己出运费吗", "-k", "3", "--index", demo_alias, "--debug", check=True)
    result = json.loads(out.stdout)
    assert len(result["hits"]) == 3
    assert set(result["hits"][0]) == {"faq_id", "question", "answer", "category", "score", "matched", "scores"}
    assert result["mode"] == "hybrid" and result["decision"]["action"] in ("answer", "suggest", "no_match")
    assert set(result["stages"]) == {"lexical", "vector", "fused", "decided"}
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


def _bench_with_kinds(tmp_path, split="test"):
    """The demo knowledge base and queries (paraphrases and near-misses), plus one no-match query."""
    bench = tmp_path / "demo-bench"
    bench.mkdir()
    shutil.copy(DEMO_FAQS, bench / "faqs.jsonl")
    queries = [{**json.loads(line), "split": split} for line in DEMO_QUERIES.open(encoding="utf-8")]
    queries += [{"qid": "no1", "query": "北京明天会下雨吗", "relevant": [], "split": split, "kind": "no_match"}]
    (bench / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries))
    return bench


def test_calibrate_fits_the_decision_and_reports_each_bench(tmp_path, es):
    bench = _bench_with_kinds(tmp_path, "dev")
    try:
        # One no-match query bounds nothing with confidence (see the next test): fit on the rates themselves.
        out = es_faq("calibrate", "--bench", str(bench), "--confidence", "0", "--curve", str(tmp_path / "c"),
                     check=True)
        report = json.loads(out.stdout)
        calibration = report["calibration"]
        assert calibration["features"] == list(DEFAULT_FEATURES)
        # A higher pair score: more often right.
        assert len(calibration["coef"]) == len(DEFAULT_FEATURES) and calibration["coef"][0] > 0
        assert 0 <= calibration["suggest_threshold"] <= calibration["answer_threshold"]
        outcome = report["outcomes"]["demo-bench"]
        assert outcome["queries"] == {"paraphrase": 44, "near_miss": 9, "no_match": 1}
        # On the rates themselves (--confidence 0) each bound's upper bound is its rate, within its bound.
        bounds = calibration["bounds"]
        assert {k: bounds[k]["queries"] for k in bounds} == {"near_miss": 9, "no_match": 1}
        assert all(b["upper"] == b["rate"] <= b["max"] for b in bounds.values())
        assert (tmp_path / "c" / "calibration-demo-bench-dev.png").stat().st_size > 0
        assert "written" not in report  # without --write the shipped calibration is left alone
    finally:
        _drop_alias_family(es, "bench-demo-bench")


def test_eval_prints_one_row_per_mode_with_the_decision_and_its_curve(tmp_path, es):
    bench = _bench_with_kinds(tmp_path)
    try:
        out = es_faq("eval", "--bench", str(bench), "--split", "test", "--mode", "all", "--curve", str(tmp_path / "c"),
                     "--json", str(tmp_path / "rows.jsonl"), check=True)
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert [r["mode"] for r in rows] == ["bm25", "vector", "hybrid", "rerank"]
        assert all(r["queries"] == 54 and r["paraphrases"] == 44 for r in rows)
        assert rows[2]["R@10"] >= rows[0]["R@10"]
        assert rows[3]["R@50"] == rows[2]["R@50"]  # reranking reorders the hybrid top, it finds nothing new
        decision = rows[2]["decision"]
        assert decision["queries"] == {"paraphrase": 44, "near_miss": 9, "no_match": 1}
        assert 0 <= decision["coverage"] <= 1 and decision["no_match_false_answer_rate"] == 0.0
        # Near-misses led by their look-alike, counted by how the look-alike differs.
        by_difference = decision["near_miss_by_difference"]
        assert all(set(part) == {"queries", "answered", "false_answer_rate"} for part in by_difference.values())
        assert "decision" not in rows[0]  # calibrated on hybrid retrieval scores: bm25 only suggests
        for m in ("hybrid", "rerank"):
            curve = json.loads((tmp_path / "c" / f"decision-demo-bench-test-{m}.json").read_text())
            assert len(curve["curve"]) == 101 and (tmp_path / "c" / f"decision-demo-bench-test-{m}.png").stat().st_size
        assert (tmp_path / "rows.jsonl").read_text().count("\n") == 4
        # A second run re-uses the index: no new version is built.
        before = es.cat.indices(index="bench-demo-bench-*", format="json", h="index").body
        es_faq("eval", "--bench", str(bench), "--mode", "bm25", "--limit", "3", check=True)
        assert es.cat.indices(index="bench-demo-bench-*", format="json", h="index").body == before
    finally:
        _drop_alias_family(es, "bench-demo-bench")


def test_eval_pairs_reports_each_corpus_at_a_threshold_from_training_data(tmp_path):
    """A small pairs_dir: bq with train and dev files, lcqmc with dev only (its threshold is pooled)."""
    rows = {"train": ["花呗怎么还款\t花呗如何还钱\t1", "花呗怎么还款\t借呗额度多少\t0"] * 10,
            "dev": ["怎么延期还款\t可以晚几天还吗\t1", "怎么延期还款\t怎么修改密码\t0"] * 5}
    for corpus, splits in (("bq", ("train", "dev")), ("lcqmc", ("dev",))):
        (tmp_path / corpus).mkdir()
        for split in splits:
            (tmp_path / corpus / f"{split}.tsv").write_text("\n".join(rows[split]) + "\n", encoding="utf-8")
    out = es_faq("eval-pairs", "--corpus", "bq", "--corpus", "lcqmc", env={"ES_FAQ_PAIRS_DIR": str(tmp_path)},
                 check=True)
    whole = json.loads(out.stdout)
    report = whole["corpora"]
    assert report["bq"]["pairs"] == 10 and report["bq"]["threshold_from"] == "bq train sample"
    assert report["lcqmc"]["threshold_from"] == "pooled train samples"
    assert all(0 <= report[c][k] <= 100 for c in report
               for k in ("accuracy", "f1", "auc", "embedder_auc", "decision_pair_auc"))
    # The embedder beside the cross-encoder, weighed as the shipped decision weighs the two.
    shipped = json.loads(Calibration.path("reranker-zh").read_text(encoding="utf-8"))
    coef = dict(zip(shipped["features"], shipped["coef"], strict=True))
    assert whole["embedder"] == "embedder-zh-d"
    assert whole["decision_weights"] == {k: coef[k] for k in ("pair_logit", "vector_score")}
    assert report["bq"]["embedder_auc"] == 100  # the two dev pairs: a paraphrase and a different question
    # The generated hard cases of diac dev, scored by both verifiers.
    hard = whole["hard_cases"]
    assert hard["bench"] == "diac" and all(0 <= hard[k] <= 100 for k in ("auc", "embedder_auc", "decision_pair_auc"))


def test_models_list_reports_provider():
    rows = json.loads(es_faq("models", "list", check=True).stdout)
    row = next(r for r in rows if r["name"] == "embedder-zh-d")  # shipped in onnx_models/, the default
    assert row["ready"] and row["dims"] == 512 and row["provider"] == "CPUExecutionProvider"
    shipped = next(r for r in rows if r["name"] == "reranker-zh")  # in onnx_models/, pulled by scripts/test
    assert shipped["task"] == "reranker" and shipped["ready"]


def test_models_export_fails_cleanly_without_hub_or_optimum(tmp_path):
    out = es_faq("models", "export", "BAAI/bge-small-zh-v1.5", "--int8", "--output", str(tmp_path / "x"))
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")  # optimum may log its own line first
    assert "optimum" in out.stderr or "BAAI/bge-small-zh-v1.5" in out.stderr


def test_eval_with_judgements_counts_a_judged_no_match_as_a_paraphrase(tmp_path, es):
    bench = _bench_with_kinds(tmp_path)
    judged = tmp_path / "judged.jsonl"
    judged.write_text(json.dumps({"qid": "no1", "faq_id": "demo-001", "judgement": "same"}) + "\n")
    try:
        out = es_faq("eval", "--bench", str(bench), "--judgements", str(judged), check=True)
        row = json.loads(out.stdout)
        assert row["paraphrases"] == 45 and row["decision"]["queries"] == {"paraphrase": 45, "near_miss": 9,
                                                                            "no_match": 0}
        assert row["judgements"]["relabelled"] == 1 and len(row["judgements"]["sha256"]) == 64
        judged.write_text(json.dumps({"qid": "no1", "faq_id": "demo-999", "judgement": "same"}) + "\n")
        out = es_faq("eval", "--bench", str(bench), "--judgements", str(judged))
        assert out.returncode != 0 and "line 1: no FAQ 'demo-999'" in out.stderr and "Traceback" not in out.stderr
    finally:
        _drop_alias_family(es, "bench-demo-bench")


def test_a_bench_too_small_for_the_bounds_is_said_and_never_written(tmp_path, es):
    """One no-match query cannot show a 2% rate at 0.9 confidence: no threshold holds, `calibrate` says so and
    what to do, and `--write` refuses rather than ship a decision that never answers."""
    from es_faq.models.manifest import MANIFEST_DIR

    bench = _bench_with_kinds(tmp_path, "dev")
    shipped = MANIFEST_DIR / "reranker-zh" / "decision.json"
    before = shipped.read_bytes()
    try:
        out = es_faq("calibrate", "--bench", str(bench))
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["calibration"]["answer_threshold"] == float("inf")
        # Nothing answered at an infinite threshold, yet one query bounds the no-match rate only to 0.9.
        assert report["calibration"]["bounds"]["no_match"] == {"queries": 1, "max": 0.02, "rate": 0.0, "upper": 0.9}
        assert "1 no-match queries" in report["warnings"][0] and "at least 114 no-match" in out.stderr
        written = es_faq("calibrate", "--bench", str(bench), "--write")
        assert written.returncode != 0 and "calibration not written" in written.stderr
        assert "Traceback" not in written.stderr
        assert shipped.read_bytes() == before
    finally:
        shipped.write_bytes(before)
        _drop_alias_family(es, "bench-demo-bench")


def test_calibration_reads_both_orders_whatever_the_order_band(tmp_path, es, settings, embedder, analyzer):
    """The decision is fitted on every pair read both ways: a search's one-order shortcut (decide_order_band)
    is judged against that fit, so it must not leak into the rows the fit learns from."""
    from es_faq.evaluation.calibrate import calibrate
    from es_faq.search.pipeline import Searcher

    bench = _bench_with_kinds(tmp_path, "dev")
    fits = {}
    try:
        for band in (0.0, 1.0):
            searcher = Searcher(settings.replace(decide_order_band=band), es, embedder, analyzer)
            calibration, _ = calibrate(searcher, [bench], "dev", DEFAULT_FEATURES, 0.05, 0.02)
            fits[band] = (calibration.coef, calibration.intercept, calibration.answer_threshold)
    finally:
        _drop_alias_family(es, "bench-demo-bench")
    # Equal up to the engine's float noise: two passes over an index built just before can differ in the vector
    # scores' sixth digit (the vector-score weight by up to 1e-6 here; a segment merge between the passes is the
    # likely cause), while one order read instead of two moves a logit by tenths.
    (coef0, intercept0, answer0), (coef1, intercept1, answer1) = fits[0.0], fits[1.0]
    assert coef0 == pytest.approx(coef1, abs=1e-4) and intercept0 == pytest.approx(intercept1, abs=1e-4)
    assert answer0 == answer1
