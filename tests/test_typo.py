"""Typo, homophone and pinyin correction of queries (es_faq/search/correct.py) against the knowledge base's own
vocabulary (es_faq/search/vocabulary.py), on the real node with the demo knowledge base and the seed dictionaries."""

from __future__ import annotations

import json
import uuid

import pytest

from es_faq.config.settings import REPO_ROOT
from es_faq.engine.client import live_indices
from es_faq.kb.faq import read_jsonl
from es_faq.kb.index import build
from es_faq.search.analyze import Analyzer
from es_faq.search.correct import Corrector
from es_faq.search.dictionary import FILES, Dictionary, parse_file
from es_faq.search.pipeline import Searcher
from es_faq.search.segment import Segmenter
from es_faq.search.vocabulary import VocabularyStore
from tests.conftest import DEMO_FAQS, DEMO_QUERIES, _drop_alias_family


def seed_dictionary() -> Dictionary:
    """analyzers/ as a dictionary snapshot, without Elasticsearch."""
    snapshot = Dictionary(version=1)
    for kind, name in FILES.items():
        for _, terms, _ in parse_file(kind, REPO_ROOT / "analyzers" / name):
            snapshot.put(kind, [t.strip() for t in terms])
    return snapshot


def test_a_corrector_fixes_only_what_is_no_word_of_the_knowledge_base():
    segmenter = Segmenter()
    segmenter.set_user_words({"花呗"})
    corrector = Corrector({"花呗": 30, "还款": 20, "怎么": 40, "逾期": 5, "不再": 3}, general=segmenter.frequencies())

    def correct(text):
        return corrector.correct(segmenter.spans(text), text)

    assert correct("花被怎么还款") == ("花呗怎么还款", [["花被", "花呗"]])  # 花被: a word of botany, not of this KB
    assert correct("花贝怎么环款") == ("花呗怎么还款", [["花贝", "花呗"], ["环款", "还款"]])
    assert correct("huabei zenme huankuan") == ("花呗 怎么 还款", [["huabei", "花呗"], ["zenme", "怎么"],
                                                                  ["huankuan", "还款"]])
    assert correct("hb怎么还款")[0] == "花呗怎么还款"  # initials
    assert correct("花呗怎么还款") == ("花呗怎么还款", [])  # clean: nothing to do
    assert correct("我不在家怎么还款") == ("我不在家怎么还款", [])  # 不在 is common Chinese, not a typo of 不再
    assert correct("ok") == ("ok", [])


@pytest.fixture(scope="module")
def seeded(settings, es, embedder):
    """The demo knowledge base under an alias of its own, analysed with the seed dictionaries; and a
    vocabulary index of its own."""
    tag = uuid.uuid4().hex[:8]
    ours = settings.replace(vocab_index=f"test-vocab-{tag}")
    analyzer = Analyzer(ours, dictionary=seed_dictionary())
    alias = f"test-typo-{tag}"
    build(es, ours, read_jsonl(DEMO_FAQS), analyzer, embedder, alias=alias, progress=False)
    yield Searcher(ours, es, embedder, analyzer), alias
    _drop_alias_family(es, alias)
    es.options(ignore_status=404).indices.delete(index=ours.vocab_index)


@pytest.mark.parametrize("typed, clean, corrections", [
    ("小橙华怎么分期还款", "小橙花怎么分期还款", [["小橙华", "小橙花"]]),  # a homophone
    ("小程花逾期了会怎样", "小橙花逾期了会怎样", [["小程花", "小橙花"]]),
    ("自动环款没扣到怎么办", "自动还款没扣到怎么办", [["环款", "还款"]]),
    ("xiaochengjie lixi zenme suan", "小橙借利息怎么算", [["xiaochengjie", "小橙借"], ["lixi", "利息"],
                                                          ["zenme", "怎么"], ["suan", "算"]]),  # full pinyin
    ("xch怎么分期还款", "小橙花怎么分期还款", [["xch", "小橙花"]]),  # initials
])
def test_a_typo_finds_what_the_clean_query_finds(seeded, typed, clean, corrections):
    searcher, alias = seeded
    noisy, right = searcher.search(typed, 3, "hybrid", index=alias), searcher.search(clean, 3, "hybrid", index=alias)
    assert noisy.analysis.corrections == corrections
    assert right.analysis.corrections == []
    assert noisy.hits[0].faq_id == right.hits[0].faq_id


def test_clean_demo_queries_are_left_alone(seeded):
    searcher, alias = seeded
    corrector = searcher.corrector(alias)
    for line in DEMO_QUERIES.read_text(encoding="utf-8").splitlines():
        query = json.loads(line)["query"]
        assert searcher.analyzer.analyze(query, expand=True, corrector=corrector).corrections == [], query


def test_without_typo_correction_nothing_is_corrected(seeded, es, embedder):
    searcher, alias = seeded
    off = Searcher(searcher.settings.replace(typo_correction=False), es, embedder, searcher.analyzer)
    assert off.search("小橙华怎么分期还款", 3, "hybrid", index=alias).analysis.corrections == []


def test_the_vocabulary_is_kept_in_elasticsearch_per_index_version(seeded, es):
    searcher, alias = seeded
    searcher.search("小橙花", 1, "bm25", index=alias)
    (index,) = live_indices(es, alias)
    stored = VocabularyStore(es, searcher.settings).read(index)  # a new process would read this, not rescan
    assert stored is not None and stored["小橙花"] > 10 and "还款" in stored
    assert es.get(index=searcher.settings.vocab_index, id=index)["_source"]["index"] == index


def test_vocabularies_of_deleted_indices_are_pruned(seeded, es, alias):
    searcher, _ = seeded
    store = VocabularyStore(es, searcher.settings)
    gone = f"{alias}-gone"
    es.indices.create(index=gone)
    store.write(gone)
    es.indices.delete(index=gone)
    assert store.read(gone) is not None
    assert store.prune() == [gone] and store.read(gone) is None
