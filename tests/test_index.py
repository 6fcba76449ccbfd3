"""Versioned indices behind an alias, against the real Elasticsearch node."""

import json

import pytest

from es_faq.errors import DataError, IndexMissing
from es_faq.index import build, live_indices, rollback, versions
from es_faq.kb import read_jsonl


def _faq(i, question, **extra):
    return json.dumps({"id": f"f{i}", "question": question, **extra}, ensure_ascii=False)


def _load(es, settings, analyzer, embedder, path, alias, **kwargs):
    return build(es, settings, read_jsonl(path), analyzer, embedder, alias=alias, progress=False, **kwargs)


def test_load_swaps_alias_and_keeps_previous_version(es, settings, analyzer, embedder, alias, tmp_jsonl):
    first = _load(es, settings, analyzer, embedder,
                  tmp_jsonl([_faq(1, "怎么还款", similar_questions=["如何还钱"]), _faq(2, "怎么退货")]), alias)
    assert (first.faqs, first.questions) == (2, 3)
    assert live_indices(es, alias) == [first.index]
    second = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(3, "发票怎么开")], "v2.jsonl"), alias)
    assert second.previous == [first.index]
    assert live_indices(es, alias) == [second.index]
    assert [v["live"] for v in versions(es, alias)] == [False, True]
    assert es.count(index=alias)["count"] == 1
    assert rollback(es, alias) == {"alias": alias, "from": second.index, "to": first.index}
    assert es.count(index=alias)["count"] == 2


def test_old_versions_are_pruned(es, settings, analyzer, embedder, alias, tmp_jsonl):
    path = tmp_jsonl([_faq(1, "怎么还款")])
    for _ in range(settings.index_keep_versions + 2):
        _load(es, settings, analyzer, embedder, path, alias)
    assert len(versions(es, alias)) == settings.index_keep_versions


def test_malformed_line_stops_load_and_leaves_alias_alone(es, settings, analyzer, embedder, alias, tmp_jsonl):
    good = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")]), alias)
    bad = tmp_jsonl([_faq(2, "怎么退货"), '{"id": "x", "question": ', _faq(3, "发票")], "bad.jsonl")
    with pytest.raises(DataError, match="line 2: invalid JSON"):
        _load(es, settings, analyzer, embedder, bad, alias)
    assert live_indices(es, alias) == [good.index]
    assert [v["index"] for v in versions(es, alias)] == [good.index]  # the partial version is gone


def test_skip_bad_loads_the_rest_and_counts_skips(es, settings, analyzer, embedder, alias, tmp_jsonl):
    bad = tmp_jsonl([_faq(2, "怎么退货"), '{"id": "x", "question": ', _faq(3, "  "), _faq(4, "发票")])
    report = _load(es, settings, analyzer, embedder, bad, alias, skip_bad=True)
    assert report.faqs == 2
    assert [s.line for s in report.skipped] == [2, 3]
    assert report.as_dict()["skipped"] == 2


def test_empty_input_never_replaces_live_index(es, settings, analyzer, embedder, alias, tmp_jsonl):
    good = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")]), alias)
    with pytest.raises(DataError, match="no valid FAQ"):
        _load(es, settings, analyzer, embedder, tmp_jsonl(["{}"], "empty.jsonl"), alias, skip_bad=True)
    assert live_indices(es, alias) == [good.index]


def test_rollback_without_history_is_a_clear_error(es, alias):
    with pytest.raises(IndexMissing, match="does not exist"):
        rollback(es, alias)
