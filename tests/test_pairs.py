"""Training pairs: corpus files, a bench's train groups, deduplication, batching. No engine needed."""

import json

import pytest

from es_faq.errors import DataError
from es_faq.train.pairs import Pair, bench_groups, dedupe, group_pairs, read_pairs


def test_read_pairs_reads_rows_and_names_the_bad_line(tmp_path):
    good = tmp_path / "bq" / "train.tsv"
    good.parent.mkdir()
    good.write_text("花呗怎么还\t花呗如何还款\t1\n借呗额度\t花呗额度\t0\n", encoding="utf-8")
    assert read_pairs(good) == [Pair("花呗怎么还", "花呗如何还款", 1, "bq"), Pair("借呗额度", "花呗额度", 0, "bq")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\t1\nc\td\tyes\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:2: expected text1<TAB>text2<TAB>0\|1"):
        read_pairs(bad)
    with pytest.raises(DataError, match="no pair file"):
        read_pairs(tmp_path / "missing.tsv")


def test_a_sample_is_seeded(tmp_path):
    path = tmp_path / "c" / "train.tsv"
    path.parent.mkdir()
    path.write_text("".join(f"问{i}\t答{i}\t{i % 2}\n" for i in range(100)), encoding="utf-8")
    assert read_pairs(path, limit=10, seed=1) == read_pairs(path, limit=10, seed=1)
    assert read_pairs(path, limit=10, seed=1) != read_pairs(path, limit=10, seed=2)
    assert len(read_pairs(path, limit=1000)) == 100


def test_dedupe_keeps_one_of_each_unordered_pair_and_drops_conflicts():
    pairs = [Pair("a", "b", 1, "x"), Pair("b", "a", 1, "y"), Pair("c", "d", 1, "x"), Pair("d", "c", 0, "x"),
             Pair("e", "e", 1, "x")]
    assert dedupe(pairs) == [Pair("a", "b", 1, "x")]


def _bench(tmp_path):
    faqs = [{"id": "f1", "question": "离职能要补偿吗", "similar_questions": ["辞职有没有补偿金"]},
            {"id": "f2", "question": "交通事故怎么赔偿", "similar_questions": []}]
    queries = [
        {"qid": "q1", "query": "主动离职可以拿补偿吗", "relevant": ["f1"], "split": "train", "kind": "paraphrase"},
        {"qid": "q2", "query": "被辞退能要补偿吗", "relevant": [], "near_miss": ["f1"], "split": "train",
         "kind": "near_miss"},
        {"qid": "q3", "query": "车祸赔偿标准", "relevant": ["f2"], "split": "dev", "kind": "paraphrase"},
    ]
    (tmp_path / "faqs.jsonl").write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in faqs))
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries))
    return tmp_path


def test_bench_pairs_come_from_the_train_split_only(tmp_path):
    groups = bench_groups(_bench(tmp_path), "train")
    assert [g.faq.id for g in groups] == ["f1"]  # f2 is asked only by a dev query
    pairs = group_pairs(groups, "diac")
    positives = {frozenset((p.text1, p.text2)) for p in pairs if p.label == 1}
    expected = [("离职能要补偿吗", "辞职有没有补偿金"), ("离职能要补偿吗", "主动离职可以拿补偿吗"),
                ("辞职有没有补偿金", "主动离职可以拿补偿吗")]
    assert positives == {frozenset(x) for x in expected}
    negatives = [p for p in pairs if p.label == 0]
    # The near-miss against the standard question and one other equivalent text.
    assert len(negatives) == 2 and all(p.text1 == "被辞退能要补偿吗" for p in negatives)
    assert negatives[0].text2 == "离职能要补偿吗" and negatives[1].text2 != "离职能要补偿吗"
    assert {p.source for p in pairs} == {"diac:paraphrase", "diac:near_miss"}


def test_batches_cover_every_pair_once_and_are_deterministic():
    torch = pytest.importorskip("torch", reason="the [train] extra is not installed (scripts/test installs it)")
    del torch
    from es_faq.train.cross_encoder import batches

    pairs = [Pair("问" * (i % 17 + 1), "答", i % 2, "x") for i in range(1000)]
    one = batches(pairs, 32, seed=5)
    assert one == batches(pairs, 32, seed=5) and one != batches(pairs, 32, seed=6)
    assert sorted(i for b in one for i in b) == list(range(1000))
    assert all(len(b) <= 32 for b in one)
