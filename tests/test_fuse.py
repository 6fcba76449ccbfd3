"""The fuse stage: merging the lexical and vector lists of one _msearch."""

import copy

import pytest

from es_faq.search.fuse import fuse
from es_faq.search.retrieve import Hit


def _hits(side, *pairs):
    return [Hit(faq_id, faq_id, "", "", score, {side: {"text": faq_id, "score": score}}) for faq_id, score in pairs]


def test_rrf_rewards_agreement_and_keeps_per_side_scores():
    lists = {"lexical": _hits("lexical", ("a", 12.0), ("b", 9.0), ("c", 1.0)),
             "vector": _hits("vector", ("b", 0.91), ("d", 0.90), ("a", 0.80))}
    ranked = fuse(lists, "rrf", lexical_weight=0.5, rrf_k=60, k=3)
    assert [h.faq_id for h in ranked][:2] == ["b", "a"]
    b = ranked[0]
    assert b.scores["lexical"] == 9.0 and b.scores["vector"] == 0.91
    assert b.score == pytest.approx(0.5 / 62 + 0.5 / 61) == b.scores["fused"]
    assert set(b.matched) == {"lexical", "vector"}


def test_weighted_normalises_each_side_and_weight_shifts_the_winner():
    lists = {"lexical": _hits("lexical", ("a", 30.0), ("b", 10.0)),
             "vector": _hits("vector", ("b", 0.90), ("a", 0.89))}
    assert fuse(lists, "weighted", 0.6, 60, 2)[0].faq_id == "a"
    assert fuse(lists, "weighted", 0.4, 60, 2)[0].faq_id == "b"


def test_one_side_empty():
    ranked = fuse({"lexical": [], "vector": _hits("vector", ("x", 0.9), ("y", 0.8))}, "rrf", 0.3, 60, 5)
    assert [h.faq_id for h in ranked] == ["x", "y"]


def test_fuse_leaves_the_side_lists_as_retrieval_gave_them():
    """With explain on, the lexical stage must show BM25 scores, not fused ones: fuse makes new hits."""
    lists = {"lexical": [Hit("a", "q", "", "", 12.0, {"lexical": {"text": "x"}}), Hit("b", "q", "", "", 3.0)],
             "vector": [Hit("b", "q", "", "", 0.9, {"vector": {"text": "y"}}), Hit("a", "q", "", "", 0.8)]}
    before = copy.deepcopy(lists)
    for method in ("rrf", "weighted"):
        fused = fuse(lists, method, 0.3, 60, 2)
        assert lists == before
        top = {h.faq_id: h for h in fused}
        assert top["a"].scores == {"lexical": 12.0, "vector": 0.8, "fused": top["a"].score}
        assert top["b"].matched == {"vector": {"text": "y"}}
