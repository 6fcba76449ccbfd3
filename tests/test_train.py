"""Training at small scale on CPU, for real: base weights, mining, fine-tuning, ONNX export, loading."""

import json
import shutil
import uuid

import numpy as np
import pytest

from es_faq.config import REPO_ROOT
from es_faq.embed import Embedder
from es_faq.models import MANIFEST_DIR, Manifest, verify
from es_faq.rerank import Reranker
from es_faq.train.base import BASE_MODEL, load_base, onnx_bert_weights
from es_faq.train.loop import device, recipe_problem
from es_faq.train.mine import mine

torch = pytest.importorskip("torch", reason="the [train] extra is not installed (scripts/test installs it)")
DEMO = REPO_ROOT / "demo"


def test_base_weights_reproduce_the_onnx_model(settings):
    """The ONNX graph mapped back into a torch BERT gives the same vectors as the ONNX model itself."""
    from transformers import BertModel

    model, tokenizer_file = load_base(settings, BertModel, add_pooling_layer=False)
    texts = ["花呗怎么延期还款", "可以推迟还花呗吗"]
    from tokenizers import Tokenizer

    ids = torch.tensor([e.ids for e in Tokenizer.from_file(str(tokenizer_file)).encode_batch(texts)])
    with torch.no_grad():
        cls = torch.nn.functional.normalize(model.eval()(input_ids=ids).last_hidden_state[:, 0], dim=-1).numpy()
    reference = Embedder(settings, BASE_MODEL).encode(texts)
    assert np.abs(cls - reference).max() < 1e-4


def test_every_anonymous_matmul_is_named(settings):
    weights = onnx_bert_weights(Manifest.load(BASE_MODEL).file(settings, "model"))
    assert not [k for k in weights if k.startswith("onnx::")]
    assert weights["encoder.layer.3.intermediate.dense.weight"].shape == (2048, 512)  # torch layout


def test_mined_groups_have_hard_negatives_and_no_gold(searcher, demo_alias):
    groups = mine(searcher, demo_alias, DEMO, depth=10, limit=12, progress=False)
    assert len(groups) == 12
    for group in groups:
        assert group.positives and group.negatives
        assert not set(group.positives) & set(group.negatives)


@pytest.fixture
def trained_name(settings, es):
    name = f"test-train-{uuid.uuid4().hex[:8]}"
    yield name
    (MANIFEST_DIR / f"{name}.json").unlink(missing_ok=True)
    shutil.rmtree(settings.models_path / name, ignore_errors=True)
    for index in es.cat.indices(index="bench-demo-*", format="json", h="index").body:
        es.indices.delete(index=index["index"])


def test_reranker_trains_exports_and_loads(settings, trained_reranker):
    trained_name, record = trained_reranker
    assert record["examples"] == 16 and record["device"] == str(device())
    manifest = Manifest.load(trained_name)
    assert manifest.source["train"]["bench"] == str(DEMO.resolve()) and manifest.task == "reranker"
    assert set(manifest.files) == {"model", "model_int8", "tokenizer"}
    assert verify(manifest, settings) == []
    scores = Reranker(settings, trained_name).score("可以推迟还款吗", ["怎么延期还款", "怎么修改收货地址"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    # Changing the recipe makes the cached model stale: `models pull` would retrain it.
    path = MANIFEST_DIR / f"{trained_name}.json"
    original = path.read_text()
    data = json.loads(original)
    data["source"]["train"]["epochs"] = 2
    try:
        path.write_text(json.dumps(data))
        assert "another recipe" in recipe_problem(Manifest.load(trained_name), settings)
    finally:
        path.write_text(original)


def test_embedder_trains_exports_and_loads(settings, trained_name):
    from es_faq.train.embedder import train_embedder

    record = train_embedder(settings, DEMO, trained_name, progress=False, limit=16, batch_size=8)
    assert record["examples"] == 16
    embedder = Embedder(settings, trained_name)
    vectors = embedder.encode(["花呗怎么延期还款", "怎么修改收货地址"])
    assert vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_a_trained_model_can_be_shipped_and_pulled_back(settings, trained_reranker, tmp_path):
    """`models ship` pins the INT8 file in onnx_models/NAME/; `models pull` installs it from there."""
    from es_faq.models import pull, ship

    name, _ = trained_reranker
    manifest_path = MANIFEST_DIR / f"{name}.json"
    recipe_manifest = manifest_path.read_text()
    elsewhere = settings.replace(model_dir=tmp_path / "models")
    try:
        shipped = ship(Manifest.load(name), settings)
        manifest = Manifest.load(name)
        assert manifest.source["repo"] == name and set(manifest.files) == {"model_int8", "tokenizer"}
        assert all(len(spec["sha256"]) == 64 for spec in manifest.files.values())
        assert (shipped / "training.json").exists()
        pull(manifest, elsewhere)  # a fresh cache: copied from the repository, checked, no training
        assert verify(manifest, elsewhere) == []
        assert Reranker(elsewhere, name).score("还款", ["怎么还款"]).shape == (1,)
    finally:
        manifest_path.write_text(recipe_manifest)
        shutil.rmtree(MANIFEST_DIR / name, ignore_errors=True)
