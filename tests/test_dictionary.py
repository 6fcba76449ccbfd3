"""Analysis dictionaries stored in Elasticsearch: validation, import/export, live pickup."""

import uuid

import pytest

from es_faq.config.settings import REPO_ROOT
from es_faq.errors import InvalidInput
from es_faq.search.analyze import Analyzer
from es_faq.search.dictionary import Dictionary, DictionaryStore, validate


@pytest.fixture
def store(es, settings):
    name = f"test-dict-{uuid.uuid4().hex[:8]}"
    yield DictionaryStore(es, settings.replace(dict_index=name))
    es.options(ignore_status=404).indices.delete(index=name)


@pytest.mark.parametrize("kind, terms, reason", [
    ("rewrite", ["还", "还款"], "one character"),
    ("rewrite", ["", "x"], "empty"),
    ("rewrite", ["花呗", "花呗花呗"], "apply again to its own output"),
    ("rewrite", ["借呗", "借唄"], "makes a loop"),
    ("rewrite", ["借唄", "借贝"], "already rewritten"),
    ("synonym", ["查询", "查询"], "at least two different terms"),
    ("word", ["花 呗"], "whitespace"),
    ("word", ["x" * 40], "longer than"),
    ("colour", ["x"], "unknown dictionary kind"),
])
def test_bad_entries_are_rejected_with_a_reason(kind, terms, reason):
    current = Dictionary(rewrites={"借唄": "借呗"})
    with pytest.raises(InvalidInput, match=reason):
        validate(kind, terms, current)


def test_longer_loops_are_found():
    current = Dictionary(rewrites={"甲乙": "丙丁", "丙丁": "戊己"})
    with pytest.raises(InvalidInput, match="loop"):
        validate("rewrite", ["戊己", "甲乙"], current)
    assert validate("rewrite", ["戊己", "庚辛"], current) == ["戊己", "庚辛"]


def test_import_export_round_trip(store, tmp_path):
    report = store.import_dir(REPO_ROOT / "analyzers")
    assert report["rejected"] == [] and report["added"]["rewrite"] >= 1
    counts = store.export_dir(tmp_path)
    assert counts == report["added"]
    assert "搏学考试 => 博学考试" in (tmp_path / "rewrites.txt").read_text(encoding="utf-8")


def test_analysis_applies_words_rewrites_filler_and_synonyms(store, settings):
    store.import_dir(REPO_ROOT / "analyzers")
    analysis = Analyzer(settings, store).analyze("亲，花唄可以推迟还款吗/微笑😊", expand=True)
    assert analysis.rewrites == [["花唄", "花呗"]]
    assert "花呗" in analysis.tokens and "亲" not in analysis.tokens
    assert "/微笑" not in analysis.text and "😊" not in analysis.normalized
    assert set(analysis.synonyms["推迟"]) >= {"延期", "延后"}
    assert analysis.dictionary_version == store.version()


def test_a_running_analyzer_picks_up_changes(store, settings):
    analyzer = Analyzer(settings.replace(dict_check_interval_s=0), store)
    assert "花呗" not in analyzer.analyze("花呗怎么还").tokens
    store.add("word", ["花呗"])
    analyzer.refresh()
    assert "花呗" in analyzer.analyze("花呗怎么还").tokens
    store.remove("word", ["花呗"])
    analyzer.refresh()
    assert "花呗" not in analyzer.analyze("花呗怎么还").tokens


def test_remove_missing_entry_is_clear(store):
    store.add("filler", ["亲"])
    with pytest.raises(InvalidInput, match="no rewrite entry"):
        store.remove("rewrite", ["没有的"])


def test_synonyms_expand_the_lexical_query(searcher, demo_alias, store, settings):
    from es_faq.search.pipeline import Searcher

    store.add("synonym", ["销户", "注销"])
    with_synonyms = Searcher(settings.replace(dict_index=store.index), searcher.client, searcher.embedder)
    result = with_synonyms.search("怎么销户", 3, "bm25", index=demo_alias)
    assert result.analysis.synonyms == {"销户": ["注销"]}
    clause = result.request["query"]["bool"]["must"][0]["nested"]["query"]["bool"]["should"][1]
    assert clause["match"]["questions.tokens"]["query"] == "注销"


def test_entry_ids_are_unambiguous(store):
    store.add("synonym", ["甲", "乙", "丙"])
    with pytest.raises(InvalidInput, match="may not contain '|'"):
        store.add("synonym", ["甲|乙", "丙"])  # would have taken the id of the group above
    assert store.load().synonyms == [["甲", "乙", "丙"]]
    with pytest.raises(InvalidInput, match="too long to store"):
        validate("synonym", [f"同义词{i:03d}" for i in range(60)], Dictionary())  # an id over Elasticsearch's 512 bytes
