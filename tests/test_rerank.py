"""The cross-encoder through onnxruntime (a small one trained for the session), the rerank stage, the decision."""

import json
import shutil

import numpy as np
import pytest

from es_faq.decide import decide
from es_faq.errors import ModelError
from es_faq.models import MANIFEST_DIR, Manifest
from es_faq.pipeline import Searcher
from es_faq.rerank import Reranker, candidate_texts
from es_faq.retrieve import Hit
from tests.conftest import DEMO_QUERIES


@pytest.fixture(scope="module")
def reranker(rerank_settings):
    return Reranker(rerank_settings)


@pytest.fixture(scope="module")
def rerank_searcher(rerank_settings, es, embedder, analyzer):
    return Searcher(rerank_settings, es, embedder, analyzer)


def _demo_queries():
    return [json.loads(line) for line in DEMO_QUERIES.open(encoding="utf-8")]


def test_recipe_manifests_name_their_training(settings):
    """reranker-bq and embedder-bq are not shipped: their manifests are recipes `models pull` trains from."""
    for name, task in ((settings.rerank_model, "reranker"), ("embedder-bq", "embedding")):
        manifest = Manifest.load(name)
        assert manifest.task == task and manifest.source["train"]["bench"] == "bq"
        assert not any("sha256" in spec for spec in manifest.files.values())


def test_scores_are_one_finite_logit_per_text(reranker):
    scores = reranker.score("可以推迟还款吗", ["怎么延期还款", "怎么修改收货地址", "借款利息怎么算"])
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert reranker.score("可以推迟还款吗", []).shape == (0,)


def test_scores_do_not_depend_on_batch_size(reranker):
    texts = ["怎么延期还款", "怎么修改收货地址", "借款利息怎么算", "提前还款有手续费吗"]
    together = reranker.score("可以推迟还款吗", texts)
    one_by_one = [reranker.score("可以推迟还款吗", [t])[0] for t in texts]
    # INT8 activations are quantized per run, so batch-mates may move a score, but only a little.
    assert np.allclose(together, one_by_one, atol=0.05), (together, one_by_one)


def test_candidate_texts_are_the_standard_and_matched_questions():
    hit = Hit("f1", "标准问", "", "", 1.0, {"lexical": {"text": "相似问"}, "vector": {"text": "标准问"}})
    assert candidate_texts(hit) == ["标准问", "相似问"]


def test_rerank_mode_orders_by_the_rerank_score(rerank_searcher, demo_alias):
    result = rerank_searcher.search("小橙花可以晚几天还吗", 5, "rerank", index=demo_alias, explain=True)
    weight = rerank_searcher.settings.rerank_retrieval_weight
    for hit in result.hits:
        assert hit.scores["rerank"] == pytest.approx(hit.scores["cross_encoder"] + weight * hit.score, abs=1e-3)
    scores = [h.scores["rerank"] for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert result.timings_ms["rerank"] > 0
    assert set(result.stages) == {"lexical", "vector", "fused", "reranked"}
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


def test_absent_gold_is_never_answered_with_the_calibrated_defaults(searcher, demo_alias):
    """Hiding each query's gold FAQ (the knowledge base without it): the default decision never answers."""
    rows = _demo_queries()
    held_out = [searcher.search(r["query"], 5, index=demo_alias, exclude=r["relevant"]) for r in rows]
    assert all(r.decision.action in ("suggest", "no_match") for r in held_out)
    assert all(not set(r["relevant"]) & {h.faq_id for h in res.hits} for r, res in zip(rows, held_out))


def _hits(*scores):
    return [Hit(f"f{i}", "q", "", "", 1.0, scores={"rerank": s}) for i, s in enumerate(scores)]


def test_decision_thresholds(settings):
    s = settings.replace(search_mode="rerank", answer_threshold=2.0, answer_margin=1.0, suggest_threshold=-1.0)
    assert decide(_hits(3.0, 1.0), "rerank", s).action == "answer"
    assert decide(_hits(3.0, 2.5), "rerank", s).action == "suggest"  # confident but not clearly ahead
    assert decide(_hits(3.0), "rerank", s).action == "answer"
    assert decide(_hits(0.0, -3.0), "rerank", s).action == "suggest"
    assert decide(_hits(-2.0, -3.0), "rerank", s).action == "no_match"
    assert decide([], "rerank", s).action == "no_match"
    # Another mode's scores are on another scale: it never answers on these thresholds.
    assert decide([Hit("f", "q", "", "", 5.0)], "hybrid", s).action == "suggest"
    # In hybrid, the fused score is what the thresholds apply to.
    h = settings.replace(search_mode="hybrid", answer_threshold=0.9, answer_margin=0.01, suggest_threshold=0.8)
    fused = [Hit("a", "q", "", "", 0.95), Hit("b", "q", "", "", 0.90)]
    assert decide(fused, "hybrid", h).action == "answer" and decide(fused[1:], "hybrid", h).action == "answer"
    assert decide([Hit("a", "q", "", "", 0.85)], "hybrid", h).action == "suggest"


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
    for role in ("model", "tokenizer"):
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
