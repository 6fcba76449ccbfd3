"""A person's judgements of (query, FAQ) pairs applied to a bench's labels (bench/judgements/)."""

import json
from pathlib import Path

import pytest

from es_faq.config.settings import Settings
from es_faq.errors import DataError
from es_faq.evaluation.bench import load_queries

REPO_ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def bench(tmp_path):
    directory = tmp_path / "bench"
    directory.mkdir()
    _write(directory / "faqs.jsonl", [{"id": "f1", "question": "怎么还款"}, {"id": "f2", "question": "怎么退款"}])
    _write(directory / "queries.jsonl", [
        {"qid": "p1", "query": "如何还钱", "relevant": ["f1"], "split": "test", "kind": "paraphrase"},
        {"qid": "n1", "query": "还款的方法", "relevant": [], "split": "test", "kind": "no_match"},
        {"qid": "m1", "query": "怎么退货", "relevant": [], "split": "test", "kind": "near_miss", "near_miss": ["f2"]},
        {"qid": "n2", "query": "明天下雨吗", "relevant": [], "split": "dev", "kind": "no_match"}])
    return directory


def test_a_query_judged_the_same_as_an_faq_counts_it_relevant(bench, tmp_path):
    judged = _write(tmp_path / "j.jsonl", [
        {"qid": "n1", "faq_id": "f1", "judgement": "same", "query": "还款的方法"},
        {"qid": "m1", "faq_id": "f2", "judgement": "different"},
        {"qid": "n2", "faq_id": "f1", "judgement": "unclear"}, ""])
    raw = {q["qid"]: q for q in load_queries(bench, "all")}
    rows = {q["qid"]: q for q in load_queries(bench, "all", judgements=judged)}
    assert rows["n1"]["kind"] == "paraphrase" and rows["n1"]["relevant"] == ["f1"] and rows["n1"]["judged"] == ["f1"]
    # Looked at and left as the bench has it.
    assert rows["m1"] == raw["m1"] and rows["n2"] == raw["n2"] and rows["p1"] == raw["p1"]
    assert [q["qid"] for q in load_queries(bench, "test", judgements=judged)] == ["p1", "n1", "m1"]


def test_a_near_miss_judged_the_same_as_its_look_alike_is_a_paraphrase_of_it(bench, tmp_path):
    judged = _write(tmp_path / "j.jsonl", [{"qid": "m1", "faq_id": "f2", "judgement": "same"}])
    row = next(q for q in load_queries(bench, "test", judgements=judged) if q["qid"] == "m1")
    assert (row["kind"], row["relevant"], row["near_miss"]) == ("paraphrase", ["f2"], [])


@pytest.mark.parametrize("line, message", [
    ('{"qid": "n1", "faq_id": "f1"', "line 1: invalid JSON"),
    ({"qid": "n1", "faq_id": "f1"}, "line 1: needs qid, faq_id and judgement"),
    ({"qid": "n1", "faq_id": "f1", "judgement": "yes"}, "'yes' is not one of same, different, unclear"),
    ({"qid": "zz", "faq_id": "f1", "judgement": "same"}, "no query 'zz'"),
    ({"qid": "n1", "faq_id": "f9", "judgement": "same"}, "no FAQ 'f9'"),
])
def test_a_bad_judgement_names_its_line_and_what_to_fix(bench, tmp_path, line, message):
    judged = _write(tmp_path / "j.jsonl", [line])
    with pytest.raises(DataError, match=message):
        load_queries(bench, "test", judgements=judged)
    with pytest.raises(DataError, match="not found; --judgements takes"):
        load_queries(bench, "test", judgements=tmp_path / "missing.jsonl")


@pytest.mark.parametrize("name", ["diac", "bq"])
def test_the_shipped_judgements_fit_the_shared_benches(name):
    bench = Settings().bench_dir / name
    path = REPO_ROOT / "bench" / "judgements" / f"{name}.jsonl"
    lines = [json.loads(line) for line in path.open(encoding="utf-8")]
    same = {(j["qid"], j["faq_id"]) for j in lines if j["judgement"] == "same"}
    raw = {q["qid"]: q for q in load_queries(bench, "all")}
    rows = {q["qid"]: q for q in load_queries(bench, "all", judgements=path)}
    # Each judged pair is of the bench's own texts, and of an FAQ its labels did not count relevant.
    assert all(raw[j["qid"]]["query"] == j["query"] and j["faq_id"] not in raw[j["qid"]]["relevant"] for j in lines)
    assert {(qid, f) for qid, q in rows.items() for f in q.get("judged", ())} == same
    assert {qid for qid in rows if rows[qid]["relevant"] != raw[qid]["relevant"]} == {qid for qid, _ in same}


@pytest.mark.parametrize("row, said", [
    ('{"qid": "x", "query": "怎么还"', "line 5: invalid JSON"),
    ({"qid": "x", "relevant": ["f1"], "split": "test"}, 'line 5: needs a JSON object with a non-empty "query"'),
    ({"qid": "x", "query": "怎么还", "relevant": "f1", "split": "test"}, "must be lists of FAQ ids"),
    ({"qid": "x", "query": "怎么还", "relevant": ["f1"], "split": "test", "kind": "same"},
     "line 5: kind 'same' is not one of paraphrase, near_miss, no_match"),
    ({"qid": "x", "query": "怎么还", "relevant": [], "split": "test", "kind": "paraphrase"},
     'a paraphrase names the FAQ it asks for in "relevant"'),
    ({"qid": "x", "query": "怎么还", "relevant": [], "split": "test", "kind": "near_miss"},
     'a near_miss names the FAQ it only looks like in "near_miss"'),
    ({"qid": "x", "query": "怎么还", "relevant": ["f1"], "split": "test", "kind": "no_match"},
     'a no_match query has "relevant": []'),
    ({"qid": "x", "query": "怎么还", "relevant": ["f9"], "split": "test", "kind": "paraphrase"},
     "line 5: no FAQ 'f9' in"),
])
def test_a_mislabelled_query_row_is_refused_with_its_line(bench, row, said):
    """A bench's queries are labelled by hand (`es-faq querylog bench` leaves them to a person): a row whose kind,
    ids or shape is wrong would quietly change a rate, so reading the bench stops at it, whatever split is asked."""
    path = bench / "queries.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + (row if isinstance(row, str) else json.dumps(row)) + "\n",
                    encoding="utf-8")
    with pytest.raises(DataError) as refused:
        load_queries(bench, "dev")
    assert said in str(refused.value) and str(path) in str(refused.value)
