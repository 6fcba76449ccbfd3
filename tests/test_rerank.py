"""The shipped cross-encoder through onnxruntime, the rerank stage, and the decision it makes."""

import json
import shutil

import numpy as np
import pytest

from es_faq.errors import ModelError
from es_faq.models.manifest import MANIFEST_DIR, Manifest
from es_faq.search.decide import (
    BASE_FEATURES,
    DEFAULT_FEATURES,
    FEATURES,
    Calibration,
    decide,
    features,
    scoring,
    thresholds,
)
from es_faq.search.pipeline import Searcher
from es_faq.search.rerank import DECISION_SIDES, Reranker, candidate_texts
from es_faq.search.retrieve import Hit
from tests.conftest import DEMO_QUERIES


@pytest.fixture(scope="module")
def reranker(rerank_settings):
    return Reranker(rerank_settings)


@pytest.fixture(scope="module")
def rerank_searcher(rerank_settings, es, embedder, analyzer):
    return Searcher(rerank_settings, es, embedder, analyzer)


def _demo_queries(kind: str = "paraphrase"):
    rows = [json.loads(line) for line in DEMO_QUERIES.open(encoding="utf-8")]
    return [r for r in rows if r.get("kind", "paraphrase") == kind]


def test_the_cross_encoder_ships_with_pinned_files_and_its_data_terms(settings):
    """A fresh clone decides with no training step: the INT8 file is in onnx_models/, sha256-pinned,
    and the manifest names every corpus it learned from with that corpus's terms."""
    manifest = Manifest.load(settings.rerank_model)
    assert manifest.task == "reranker" and manifest.source["repo"] == settings.rerank_model
    assert all(len(spec["sha256"]) == 64 for spec in manifest.files.values())
    assert {"bq", "atec", "diac"} <= {part["corpus"] for part in manifest.training_data}
    assert all(part["terms"] for part in manifest.training_data)
    assert Calibration.path(settings.rerank_model).exists()


def test_scores_are_one_finite_logit_per_text(reranker):
    scores = reranker.score("可以推迟还款吗", ["怎么延期还款", "怎么修改收货地址", "借款利息怎么算"])
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert reranker.score("可以推迟还款吗", []).shape == (0,)


def test_scores_do_not_depend_on_batch_mates(reranker):
    """Static INT8: activation scales are fixed at export, so a pair scores the same alone or in any batch."""
    texts = ["怎么延期还款", "怎么修改收货地址", "借款利息怎么算，年化利率是多少", "提前还款有手续费吗"]
    together = reranker.score("可以推迟还款吗", texts)
    one_by_one = np.array([reranker.score("可以推迟还款吗", [t])[0] for t in texts])
    assert np.array_equal(together, one_by_one), (together, one_by_one)


def test_runs_sorted_by_length_keep_each_pair_in_its_place(rerank_settings):
    """score_pairs sorts pairs by length into runs of rerank_batch_size: every logit must land back on
    its own pair, and the run size must not change any score."""
    pairs = [("可以推迟还款吗", t) for t in ("借款利息怎么算，年化利率是多少，逾期了怎么办", "怎么延期还款",
                                             "提前还款有手续费吗", "还款", "怎么修改收货地址和电话号码")]
    scores = {size: Reranker(rerank_settings.replace(rerank_batch_size=size)).score_pairs(pairs)
              for size in (1, 2, 64)}
    alone = [Reranker(rerank_settings).score_pairs([pair])[0] for pair in pairs]
    assert all(np.array_equal(s, np.array(alone, dtype=np.float32)) for s in scores.values()), scores


def test_both_orders_average_the_two_logits_of_each_pair(rerank_settings, reranker):
    """rerank_both_orders scores (query, text) and (text, query) and keeps their mean: the model is
    not symmetric, so the two orders differ, and the mean lies between them."""
    query, texts = "可以推迟还款吗", ["怎么延期还款", "提前还款有手续费吗"]
    forward = reranker.score_ordered([(query, t) for t in texts])
    backward = reranker.score_ordered([(t, query) for t in texts])
    assert not np.array_equal(forward, backward)
    assert rerank_settings.rerank_both_orders  # the default
    np.testing.assert_allclose(reranker.score(query, texts), (forward + backward) / 2, rtol=0, atol=1e-6)
    one_order = Reranker(rerank_settings.replace(rerank_both_orders=False))
    assert np.array_equal(one_order.score(query, texts), forward)


def test_the_reverse_order_is_read_only_near_a_threshold(rerank_searcher, demo_alias):
    """decide_order_band: the decision reads (query, question) first and the reverse only where P(right) from
    that one order is within the band of a threshold; there it decides exactly as reading both always does,
    and elsewhere it decides on the one order's logit."""
    settings = rerank_searcher.settings
    assert settings.rerank_both_orders and 0 < settings.decide_order_band < 1  # the defaults

    def with_band(band: float) -> Searcher:
        return Searcher(settings.replace(decide_order_band=band), rerank_searcher.client, rerank_searcher.embedder,
                        rerank_searcher.analyzer, rerank_searcher.reranker)

    shortcut, always = with_band(settings.decide_order_band), with_band(1.0)
    assert shortcut.calibration is not None
    limits = thresholds(settings, shortcut.calibration)
    orders = []
    for row in _demo_queries() + _demo_queries("near_miss"):
        short = shortcut.search(row["query"], 5, index=demo_alias)
        full = always.search(row["query"], 5, index=demo_alias).decision
        assert full.orders == 2
        orders.append(short.decision.orders)
        if short.decision.orders == 2:
            assert short.decision == full
            continue
        assert all(abs(short.decision.probability - t) >= settings.decide_order_band for t in limits)
        texts = candidate_texts(short.hits[0], sides=DECISION_SIDES)
        forward = shortcut.reranker.score_ordered([(short.analysis.text, t) for t in texts])
        assert short.decision.pair_score == round(float(forward.max()), 4)
    # The demo has queries on both sides of the band.
    assert orders.count(1) and orders.count(2), orders


def test_a_search_reads_the_leaders_differences_once(rerank_searcher, demo_alias, monkeypatch):
    """The differences depend on the leader's texts, not on the logits: a search that reads the reverse order
    decides twice but compares the query with the leader's question once, and says what it found."""
    from es_faq.search import differ

    calls = []
    real = differ.compare
    monkeypatch.setattr(differ, "compare", lambda query, text: calls.append((query, text)) or real(query, text))
    orders = set()
    for row in _demo_queries()[:8] + _demo_queries("near_miss")[:8]:
        calls.clear()
        result = rerank_searcher.search(row["query"], 5, index=demo_alias)
        orders.add(result.decision.orders)
        assert len(calls) == 1 and calls[0][1] in candidate_texts(result.hits[0], sides=DECISION_SIDES)
        assert result.decision.differences == tuple(d.describe() for d in real(*calls[0]))
    assert orders == {1, 2}


def test_candidate_texts_are_the_standard_and_matched_questions():
    hit = Hit("f1", "标准问", "", "", 1.0, {"lexical": {"text": "相似问"}, "vector": {"text": "标准问"}})
    assert candidate_texts(hit) == ["标准问", "相似问"]
    assert candidate_texts(hit, sides=DECISION_SIDES) == ["标准问"]


def test_the_decision_asks_for_the_vector_sides_match_details_only(rerank_searcher, demo_alias):
    """A search that shows no match details sends the engine the vector side's inner hits alone (what the
    decision reads) and decides exactly as one that shows both sides' (debug)."""
    for row in _demo_queries()[:6] + _demo_queries("near_miss")[:6]:
        plain = rerank_searcher.search(row["query"], 5, index=demo_alias, matches=False)
        shown = rerank_searcher.search(row["query"], 5, index=demo_alias, matches=True)
        body = json.dumps(plain.request)
        assert '"name": "vector"' in body and '"name": "lexical"' not in body
        assert '"name": "lexical"' in json.dumps(shown.request)
        assert {side for hit in plain.hits for side in hit.matched} == {"vector"}
        assert plain.decision == shown.decision
        assert [h.faq_id for h in plain.hits] == [h.faq_id for h in shown.hits]


def test_rerank_mode_orders_by_the_rerank_score(rerank_searcher, demo_alias):
    result = rerank_searcher.search("小橙花可以晚几天还吗", 5, "rerank", index=demo_alias, explain=True)
    weight = rerank_searcher.settings.rerank_retrieval_weight
    for hit in result.hits:
        assert hit.scores["rerank"] == pytest.approx(hit.scores["cross_encoder"] + weight * hit.score, abs=1e-3)
    scores = [h.scores["rerank"] for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert result.timings_ms["rerank"] > 0
    assert set(result.stages) == {"lexical", "vector", "fused", "reranked", "decided"}
    assert [s["faq_id"] for s in result.stages["reranked"][:5]] == [h.faq_id for h in result.hits]
    # The cross-encoder reorders the fused candidates; it neither adds nor drops one.
    depth = rerank_searcher.settings.rerank_depth
    assert {s["faq_id"] for s in result.stages["reranked"]} == {s["faq_id"] for s in result.stages["fused"][:depth]}


def test_retrieval_weight_dominates_when_large(rerank_searcher, demo_alias):
    """With a large rerank_retrieval_weight the fused order comes back: the interpolation is wired right."""
    heavy = Searcher(rerank_searcher.settings.replace(rerank_retrieval_weight=1e6), rerank_searcher.client,
                     rerank_searcher.embedder, rerank_searcher.analyzer, rerank_searcher.reranker)
    query = _demo_queries()[0]["query"]
    fused = [h.faq_id for h in heavy.search(query, 10, "hybrid", index=demo_alias).hits]
    assert [h.faq_id for h in heavy.search(query, 10, "rerank", index=demo_alias).hits] == fused


def _answered_without_gold(searcher, demo_alias) -> list[str]:
    """Each paraphrase searched with its gold FAQ hidden (the knowledge base without it): those answered."""
    rows = _demo_queries()
    held_out = [searcher.search(r["query"], 5, index=demo_alias, exclude=r["relevant"]) for r in rows]
    assert all(not set(r["relevant"]) & {h.faq_id for h in res.hits} for r, res in zip(rows, held_out, strict=True))
    return [r["query"] for r, res in zip(rows, held_out, strict=True) if res.decision.action == "answer"]


def test_absent_gold_is_rarely_answered_with_the_calibrated_defaults(searcher, demo_alias):
    """1 of the 44 demo paraphrases (请问小橙花不想用了，怎么把它停掉) is answered when its FAQ is
    hidden with the cross-encoder's fourth run (seventeenth session). Measured 2026-12-04 (eighth
    session) with the defaults then (the third run, the leader alone, the reverse order read near a
    threshold): 4 (请问换了新号码，账号绑定的手机怎么更新, 请问小橙花不想用了，怎么把它停掉,
    小橙借申请提交了，审核一般要等多久能出结果, 小橙借最短可以借多久); 3 in the seventh session, 4 in
    the sixth, 2 with one order over the top 3; 3 in the twelfth, the thresholds held with a margin.
    A floor with one query of room for another CPU's INT8 arithmetic."""
    answered = _answered_without_gold(searcher, demo_alias)
    assert len(answered) <= 5, answered


@pytest.mark.xfail(strict=True, reason="not met yet (issue 19): 1 of 44 demo paraphrases is answered with its "
                   "FAQ hidden, with the wrong FAQ")
def test_absent_gold_is_never_answered_with_the_calibrated_defaults(searcher, demo_alias):
    """The goal: with its FAQ hidden, no demo paraphrase is answered."""
    assert not _answered_without_gold(searcher, demo_alias)


def _demo_decisions(searcher, demo_alias):
    """(paraphrases answered with their FAQ, all paraphrases, near-misses answered: (query, the FAQ answered, whether
    it is the one the query imitates)). No FAQ answers a near-miss, so any answer to one is a false answer."""
    paraphrases = _demo_queries()
    answered = [r["query"] for r in paraphrases
                if (res := searcher.search(r["query"], 5, index=demo_alias)).decision.action == "answer"
                and res.hits[0].faq_id in r["relevant"]]
    leaks = [(r["query"], res.hits[0].faq_id, res.hits[0].faq_id in r["near_miss"]) for r in _demo_queries("near_miss")
             if (res := searcher.search(r["query"], 5, index=demo_alias)).decision.action == "answer"]
    return answered, paraphrases, leaks


def test_the_demo_decides_at_least_as_well_as_measured(searcher, demo_alias):
    """Shipped defaults on the demo (docs/benchmarks.md, "The demo"): 23 of its 44 paraphrases
    answered with their FAQ (22 with the order band at 0.10), none of its 9 near-misses answered with
    the FAQ it imitates, and 1 answered with a third FAQ (小橙花额度怎么降低 with
    为什么小橙花额度被降低了？), measured 2026-12-05 (seventeenth session) with the cross-encoder's
    fourth run (taught by the embedder) and thresholds held on 0.9 upper confidence bounds. The
    third run answered 22, and 2 near-misses with a third FAQ (also 小橙借怎么关闭 with
    如何注销小橙账户？; thirteenth session); 28 and none imitated with the eighth session's thresholds
    on the dev rates; 27 and 1 leak (怎么关闭自动还款) in the sixth; the first cross-encoder answered 1
    paraphrase. A floor with a little room for another CPU's INT8 arithmetic."""
    answered, paraphrases, leaks = _demo_decisions(searcher, demo_alias)
    assert len(answered) >= 20, answered
    assert not [leak for leak in leaks if leak[2]], leaks
    assert len(leaks) <= 3, leaks


@pytest.mark.xfail(strict=True, reason="not met yet (issue 19): 23 of 44 demo paraphrases answered; 1 near-miss "
                   "answered with a third FAQ (none with the FAQ it imitates since the seventh session)")
def test_the_demo_answers_its_paraphrases_and_none_of_its_near_misses(searcher, demo_alias):
    """The goal, a new user's first tries: 9 in 10 of the demo's paraphrases answered with their FAQ, and no
    near-miss ("小橙花可以提前还款吗" for 小橙花怎么延期还款) answered, with the FAQ it only looks like or any other."""
    answered, paraphrases, leaks = _demo_decisions(searcher, demo_alias)
    assert len(answered) >= 0.9 * len(paraphrases) and not leaks


# What a calibration fitted with the default pair scoring records (the logit of each pair in both orders).
BOTH = {"scoring": {"rerank_both_orders": True}}


def _scored(*logits, retrieval=(0.9, 0.8, 0.7)):
    return [Hit(f"f{i}", "q", "", "", r, scores={"cross_encoder": x})
            for i, (x, r) in enumerate(zip(logits, retrieval, strict=False))]


def test_the_decision_features_are_the_leaders_scores_and_margins():
    values = features(_scored(3.0, 1.0, 2.5), "q", depth=3)
    assert {k: values[k] for k in BASE_FEATURES} == pytest.approx(
        {"pair_logit": 3.0, "margin": 0.5, "retrieval_score": 0.9, "retrieval_margin": 0.1})
    assert set(values) == set(FEATURES)
    # A lone candidate leads by the cap; the cross-encoder may prefer another hit (a negative margin).
    assert features(_scored(2.0), "q")["margin"] == 10.0 and features(_scored(40.0, -40.0), "q", 2)["margin"] == 10.0
    assert features(_scored(1.0, 3.0), "q", depth=2)["margin"] == -2.0
    # The logit margin is over the first `depth` hits (those the cross-encoder scored); the retrieval margin
    # over the top 3 whatever the depth (decide_depth 1 scores the leader alone).
    leader_alone = features(_scored(3.0, 1.0, 2.5), "q", depth=1)
    assert leader_alone["margin"] == 10.0 and leader_alone["retrieval_margin"] == pytest.approx(0.1)


def test_the_embedders_verdict_is_the_vector_sides_score_of_each_hit():
    """vector_score is the vector side's score of the leader's best-matching question (its inner hit, or the
    per-side score a fused mode keeps), vector_margin its lead over the best other; a hit the vector side did
    not find scores 0, below any (1 + cosine) / 2 of a hit it found."""
    leader = Hit("f0", "q", "", "", 1.2, matched={"vector": {"text": "q2", "score": 0.9}},
                 scores={"cross_encoder": 1.0})
    fused = Hit("f1", "q", "", "", 0.03, scores={"cross_encoder": 0.0, "vector": 0.85})
    lexical_only = Hit("f2", "q", "", "", 1.0, matched={"lexical": {"text": "q3", "score": 7.0}},
                       scores={"cross_encoder": 0.0})
    values = features([leader, fused, lexical_only], "q")
    assert values["vector_score"] == 0.9 and values["vector_margin"] == pytest.approx(0.05)
    values = features([lexical_only, leader], "q")
    assert values["vector_score"] == 0.0 and values["vector_margin"] == pytest.approx(-0.9)


def test_the_differences_are_read_against_the_leaders_closest_question(settings):
    """A near-miss imitates one of the FAQ's questions: the query is compared with the closest of those the
    decision reads (the standard question and the vector side's best match)."""
    matched = {"lexical": {"text": "多久到账", "score": 3.0}, "vector": {"text": "借款5天了还没到账", "score": 0.8}}
    leader = Hit("f0", "借款多久到账", "", "", 0.9, matched=matched, scores={"cross_encoder": 3.0})
    values = features([leader], "借款3天了还没到账")
    assert values["diff_number"] == 1.0
    calibration = Calibration(("pair_logit", "diff_number"), (1.0, -5.0), 0.0, 0.8, 0.3, BOTH)
    decision = decide([leader], 1, settings, calibration, query="借款3天了还没到账")
    assert decision.action == "no_match" and decision.differences == ("differs in a number: 3 vs 5",)
    assert "differs in a number: 3 vs 5" in decision.reason
    assert decision.as_dict()["differences"] == ["differs in a number: 3 vs 5"]
    same = decide([leader], 1, settings, calibration, query="借款5天了还没到账")
    assert same.action == "answer" and same.differences == ()


def test_a_negation_or_an_antonym_vetoes_an_answer(settings):
    """Whatever P(right) says, a leader whose closest question says the opposite is only suggested (answer_veto;
    off by default)."""
    assert settings.answer_veto == ""
    settings = settings.replace(answer_veto="negation,antonym")
    calibration = Calibration(("pair_logit",), (1.0,), 0.0, 0.8, 0.3, BOTH)
    leader = Hit("f0", "怎么设置自动还款？", "", "", 0.9, scores={"cross_encoder": 6.0})
    vetoed = decide([leader], 1, settings, calibration, query="怎么关闭自动还款")
    assert vetoed.action == "suggest" and vetoed.probability > 0.8
    assert vetoed.reason.endswith("differs in an antonym: 关闭 vs 设置 (answer_veto)")
    assert decide([leader], 1, settings.replace(answer_veto=""), calibration, query="怎么关闭自动还款").action == \
        "answer"
    assert decide([leader], 1, settings, calibration, query="自动还款怎么设置").action == "answer"


def test_an_unknown_veto_kind_is_refused():
    from es_faq.config.load import load_settings
    from es_faq.errors import ConfigError

    with pytest.raises(ConfigError, match="antonyms is not a kind of difference"):
        load_settings({"ES_FAQ_ANSWER_VETO": "negation,antonyms"})
    assert load_settings({"ES_FAQ_ANSWER_VETO": " negation , order "}).veto_kinds == ("negation", "order")


LOGIT_ONLY = ("pair_logit", "margin")


def test_decision_thresholds_apply_to_the_calibrated_probability(settings):
    # P = sigmoid(logit + margin - 3): 3.0 with margin 2.0 gives 0.88; 3.0 with 0.5 gives 0.62.
    calibration = Calibration(LOGIT_ONLY, (1.0, 1.0), -3.0, 0.8, 0.3, BOTH)
    assert decide(_scored(3.0, 1.0), 3, settings, calibration).action == "answer"
    close = decide(_scored(3.0, 2.5), 3, settings, calibration)
    assert close.action == "suggest" and close.probability == pytest.approx(0.6225, abs=1e-4)
    assert (close.pair_score, close.margin) == (3.0, 0.5)
    # Scored alone (decide_depth 1) the leader has no margin to report.
    logit = Calibration(("pair_logit",), (1.0,), -3.0, 0.8, 0.3, BOTH)
    assert decide(_scored(3.0, 2.5), 1, settings, logit).margin is None
    assert decide(_scored(-1.0, -3.0), 3, settings, calibration).action == "no_match"
    assert decide([], 3, settings, calibration).action == "no_match"
    # Settings override the calibrated thresholds; inf never answers.
    assert decide(_scored(3.0, 1.0), 3, settings.replace(answer_threshold=0.9), calibration).action == "suggest"
    assert decide(_scored(9.0), 3, settings.replace(answer_threshold=float("inf")), calibration).action == "suggest"
    # Without a calibration or with the cross-encoder off, a search only suggests, and says why.
    assert "calibrate" in decide(_scored(3.0), 3, settings, None).reason
    assert decide(_scored(3.0), 0, settings, calibration).reason.startswith("the cross-encoder decision is off")


def test_retrieval_features_tie_a_calibration_to_its_retrieval_mode(settings):
    calibration = Calibration(("pair_logit", "retrieval_score"), (1.0, 10.0), -10.0, 0.5, 0.1,
                              {"retrieval_mode": "hybrid", **BOTH})
    assert decide(_scored(3.0, retrieval=(0.9,)), 1, settings, calibration, "hybrid").action == "answer"
    other = decide(_scored(3.0, retrieval=(0.9,)), 1, settings, calibration, "bm25")
    assert other.action == "suggest" and "calibrated on hybrid" in other.reason
    # One on the cross-encoder alone applies to every mode.
    alone = Calibration(LOGIT_ONLY, (1.0, 0.0), 0.0, 0.5, 0.1, {"retrieval_mode": "hybrid", **BOTH})
    assert decide(_scored(3.0, retrieval=(0.9,)), 1, settings, alone, "bm25").action == "answer"


def test_retrieval_features_tie_a_calibration_to_the_fusion_it_was_fitted_with(settings):
    """vector_boost scales the vector side's scores (the fused one and the inner hits' alike), lexical_boost
    the fused one: a calibration recorded with other values only suggests, and says which setting moved and
    what to run; a calibration that names no scoring (written before it was recorded) is checked on the mode."""
    fitted = {"retrieval_mode": "hybrid", "scoring": {"fusion": "sum", "lexical_boost": 0.01, "vector_boost": 1.0,
                                                      "rerank_both_orders": True}}
    calibration = Calibration(("pair_logit", "vector_score"), (1.0, 10.0), -10.0, 0.5, 0.1, fitted)
    hits = _scored(3.0, retrieval=(0.9,))
    hits[0].matched["vector"] = {"text": "q", "score": 0.9}
    same = settings.replace(fusion="sum", lexical_boost=0.01, vector_boost=1.0)
    assert decide(hits, 1, same, calibration, "hybrid").action == "answer"
    moved = decide(hits, 1, same.replace(vector_boost=2.0), calibration, "hybrid")
    assert moved.action == "suggest" and "vector_boost 2.0 (fitted with 1.0)" in moved.reason
    assert "calibrate --write" in moved.reason
    other = decide(hits, 1, same.replace(fusion="rrf"), calibration, "hybrid")
    assert other.action == "suggest" and "fusion rrf (fitted with sum)" in other.reason
    unrecorded = Calibration(calibration.features, calibration.coef, -10.0, 0.5, 0.1, {"retrieval_mode": "hybrid"})
    assert decide(hits, 1, same.replace(vector_boost=2.0, rerank_both_orders=False), unrecorded,
                  "hybrid").action == "answer"


def test_a_calibration_holds_only_for_the_pair_scoring_it_was_fitted_with(settings):
    """The logits of pairs scored in both orders are means of two logits, and the logit margin is over the
    first decide_depth candidates: a calibration fitted otherwise only suggests, in any retrieval mode. One
    written before rerank_both_orders was recorded was fitted on one order (and on its recorded depth)."""
    hits = _scored(3.0, 1.0, 0.5)
    one_order = Calibration(LOGIT_ONLY, (1.0, 0.0), 0.0, 0.5, 0.1,
                            {"decide_depth": 3, "scoring": {"fusion": "sum", "rerank_both_orders": False}})
    assert decide(hits, 3, settings.replace(rerank_both_orders=False, decide_depth=3), one_order).action == "answer"
    both = decide(hits, 3, settings.replace(rerank_both_orders=True, decide_depth=3), one_order, "bm25")
    assert both.action == "suggest" and "rerank_both_orders True (fitted with False)" in both.reason
    legacy = Calibration(LOGIT_ONLY, (1.0, 0.0), 0.0, 0.5, 0.1, {"decide_depth": 3})
    shallower = decide(hits, 1, settings.replace(rerank_both_orders=False, decide_depth=1), legacy)
    assert shallower.action == "suggest" and "decide_depth 1 (fitted with 3)" in shallower.reason
    # Without the logit margin among the features the depth does not matter.
    logit = Calibration(("pair_logit",), (1.0,), 0.0, 0.5, 0.1, {"decide_depth": 3, **BOTH})
    assert decide(hits, 1, settings.replace(decide_depth=1), logit).action == "answer"


def test_the_shipped_decision_answers_a_clear_case_and_refuses_a_clear_miss(settings):
    """The shipped decision: a logistic regression on the default features (the cross-encoder's logit of the
    leader, each pair read both ways; the embedder's vector score and margin; the retrieval margin; not the
    retrieval score, whose scale follows the knowledge base), fitted on diac dev with the shipped search; a
    diac test query's features with a high logit are answered, with a low logit they are not even suggested.
    (Trees, `--learner trees`, answered more of diac test but half as many of the demo's paraphrases:
    docs/benchmarks.md.)"""
    shipped = Calibration.load(settings.rerank_model)
    assert shipped.learner == "logistic" and shipped.features == DEFAULT_FEATURES
    assert shipped.fitted_on["benches"] == ["diac"] and shipped.fitted_on["split"] == "dev"
    assert shipped.fitted_on["scoring"] == scoring(settings)
    assert shipped.applies_to("hybrid", settings) and shipped.fitted_on["scoring"]["rerank_both_orders"]
    row = {"pair_logit": 0.43, "margin": 1.52, "retrieval_score": 1.099, "retrieval_margin": 0.043,
           "vector_score": 0.884, "vector_margin": 0.029}
    assert shipped.probability({**row, "pair_logit": 4.0, "margin": 5.0}) >= shipped.answer_threshold
    assert shipped.probability({**row, "pair_logit": -4.0, "margin": 2.0}) < shipped.suggest_threshold


def test_a_calibration_survives_a_round_trip(settings, tmp_path, monkeypatch):
    monkeypatch.setattr("es_faq.search.decide.MANIFEST_DIR", tmp_path)
    saved = Calibration(LOGIT_ONLY, (0.5, 0.25), -1.0, 0.7, 0.2, {"benches": ["diac"]})
    saved.save("m")
    assert Calibration.load("m") == saved
    data = json.loads((tmp_path / "m" / "decision.json").read_text())
    data["features"] = ["pair_logit", "no_such_feature"]
    (tmp_path / "m" / "decision.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="calibrate --write"):
        Calibration.load("m")


def test_the_default_search_decides_with_the_cross_encoder(searcher, demo_alias):
    """A paraphrase of a demo FAQ is answered with it; a question no FAQ is about is not answered."""
    result = searcher.search("小橙花可以晚几天还吗", 5, index=demo_alias, explain=True)
    head = result.hits[:searcher.settings.decide_depth]
    assert all("cross_encoder" in h.scores for h in head)
    # The cross-encoder verifies; the order stays the retrieval's.
    assert [h.faq_id for h in head] == [s["faq_id"] for s in result.stages["fused"][:len(head)]]
    assert result.hits[0].faq_id == "demo-031" and result.decision.action in ("answer", "suggest")
    assert 0 <= result.decision.probability <= 1 and result.timings_ms["decide"] > 0
    assert [s["faq_id"] for s in result.stages["decided"]] == [h.faq_id for h in head]
    # A near-miss of the same FAQ (early repayment, not a delay) is never answered, and is judged less likely.
    near_miss = searcher.search("小橙花可以提前还款吗", 5, index=demo_alias)
    assert near_miss.decision.action != "answer"
    assert near_miss.decision.probability < result.decision.probability
    unrelated = searcher.search("今天北京天气怎么样", 5, index=demo_alias)
    assert unrelated.decision.action != "answer"


def test_embedding_model_is_refused_as_reranker(settings):
    with pytest.raises(ModelError, match="needs a reranker model"):
        Reranker(settings, settings.embed_model)


@pytest.fixture
def fake_reranker(settings, tmp_path):
    """The embedding model's files under a manifest that claims to be a reranker."""
    source = Manifest.load(settings.embed_model)
    name = f"test-fake-reranker-{tmp_path.name}"[:60]
    target = settings.models_path / name
    target.mkdir(parents=True)
    files = {}
    for role in source.files:
        shutil.copy(source.file(settings, role), target / source.files[role]["path"])
        files[role] = {"path": source.files[role]["path"]}
    path = MANIFEST_DIR / f"{name}.json"
    path.write_text(json.dumps({"name": name, "task": "reranker", "source": {}, "files": files, "max_tokens": 64}))
    yield name
    path.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)


def test_model_with_the_wrong_output_shape_fails_at_load(settings, fake_reranker):
    with pytest.raises(ModelError, match="one logit per pair"):
        Reranker(settings, fake_reranker)


def test_a_calibration_holds_only_for_the_weights_it_was_fitted_on(settings):
    """A model retrained or shipped under the same name keeps the old decision.json beside it: those searches
    only suggest, and say why, until `es-faq calibrate --write`."""
    fitted = {"retrieval_mode": "hybrid", **BOTH, "model": "reranker-zh", "weights_sha256": "a" * 64}
    stale = Calibration(("pair_logit",), (1.0,), -3.0, 0.8, 0.3, fitted, weights_sha256="b" * 64)
    assert "fitted on other weights of reranker-zh (sha256 aaaaaaaaaaaa, not bbbbbbbbbbbb)" in stale.mismatch(
        "hybrid", settings)
    decision = decide(_scored(9.0), 1, settings, stale)
    assert decision.action == "suggest" and "calibrate --write" in decision.reason
    assert Calibration(("pair_logit",), (1.0,), -3.0, 0.8, 0.3, fitted, weights_sha256="a" * 64).applies_to(
        "hybrid", settings)
    # Written before the weights were recorded, or for a model not yet shipped: nothing to compare.
    assert not Calibration(("pair_logit",), (1.0,), -3.0, 0.8, 0.3, {**fitted, "weights_sha256": None},
                           weights_sha256="b" * 64).mismatch("hybrid", settings)


def test_the_shipped_decision_was_fitted_on_the_shipped_weights(settings):
    shipped = Calibration.load(settings.rerank_model)
    assert shipped.weights_sha256 == Manifest.load(settings.rerank_model).files["model_int8"]["sha256"]
    assert shipped.fitted_on["weights_sha256"] == shipped.weights_sha256
    assert shipped.applies_to("hybrid", settings)
    # The file records the weights it was fitted on, never the loaded ones' field.
    assert "weights_sha256" not in json.loads(Calibration.path(settings.rerank_model).read_text(encoding="utf-8"))
