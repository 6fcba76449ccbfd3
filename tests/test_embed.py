"""The real bge-small-zh INT8 model through onnxruntime: shapes, normalisation, meaning, load errors."""

import json
import shutil

import numpy as np
import pytest

from es_faq.errors import ModelError
from es_faq.models.manifest import MANIFEST_DIR, Manifest, verify
from es_faq.search.embed import Embedder


def test_vectors_are_unit_length_and_exactly_independent_of_batch_mates(embedder):
    """A text's vector must not depend on what else is encoded with it, to the bit: indexing batches,
    and the vector cache (es_faq/kb/vectors.py) hands out what another batch computed."""
    texts = ["花呗怎么延期还款", "借呗额度怎么提升", "退货运费谁出", "请问我的花呗为什么突然不能用了，是不是逾期了"]
    together = embedder.encode(texts, batch_size=32)
    reversed_ = embedder.encode(texts[::-1], batch_size=32)[::-1]
    one_by_one = np.vstack([embedder.encode([t], batch_size=1) for t in texts])
    assert together.shape == (4, embedder.dims) == (4, 512)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(together, one_by_one) and np.array_equal(together, reversed_)


def test_the_default_embedder_runs_each_text_alone_because_a_batch_would_move_its_vectors(settings, embedder):
    """The shipped embedder is dynamic INT8: run in one batch, each activation's scale would come from the whole
    batch and a text's vector from its batch-mates (what the test above rules out), so each text runs alone, and
    texts run side by side on threads, which gives every text the vector it gets on one thread."""
    texts = ["花呗怎么延期还款", "借呗额度怎么提升", "退货运费谁出", "请问我的花呗为什么突然不能用了，是不是逾期了"]
    assert embedder.manifest.quantization == "int8-dynamic" and embedder.runs_alone
    alone = np.vstack([embedder.encode([t]) for t in texts])
    assert not np.array_equal(embedder._vectors(texts), alone)  # one batch: the vectors move
    one_thread = Embedder(settings.replace(onnx_threads=1)).encode(texts * 3)
    two_threads = Embedder(settings.replace(onnx_threads=2)).encode(texts * 3)
    assert np.array_equal(one_thread, two_threads) and np.array_equal(one_thread[:4], alone)


def test_paraphrase_is_closer_than_unrelated_question(embedder):
    query = embedder.encode(["可以推迟还花呗吗"], is_query=True)[0]
    docs = embedder.encode(["花呗怎么延期还款", "怎么修改收货地址"])
    assert query @ docs[0] > query @ docs[1] + 0.1


def test_a_query_prefix_in_the_manifest_changes_the_vector(settings, embedder):
    """bge-small-zh-v1.5 was published with an instruction for queries; embedder-zh-d (the default) was trained
    without one, so a query and a stored question of the same text get the same vector."""
    base = Embedder(settings, "bge-small-zh-v1.5")
    assert not np.allclose(base.encode(["花呗怎么延期还款"])[0], base.encode(["花呗怎么延期还款"], is_query=True)[0])
    assert embedder.manifest.data["query_prefix"] == ""
    assert np.array_equal(embedder.encode(["花呗怎么延期还款"]), embedder.encode(["花呗怎么延期还款"], is_query=True))


def test_cached_files_match_manifest(settings):
    assert verify(Manifest.load(settings.embed_model), settings) == []


@pytest.fixture
def broken_model(settings, tmp_path):
    """A copy of the real model under a manifest whose claims can be bent per test."""
    manifest = Manifest.load(settings.embed_model)
    name = f"test-broken-{tmp_path.name}"[:60]
    target = settings.models_path / name
    target.mkdir(parents=True)
    for role in manifest.files:  # the INT8 file (a shipped model has no fp32 one) and the tokenizer
        shutil.copy(manifest.file(settings, role), target / manifest.files[role]["path"])
    data = json.loads(json.dumps(manifest.data))
    data["name"] = name
    path = MANIFEST_DIR / f"{name}.json"

    def write(**changes):
        data.update(changes)
        path.write_text(json.dumps(data))
        return name
    yield write, target, data
    path.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)


def test_wrong_dims_fail_at_load(settings, broken_model):
    write, _, _ = broken_model
    with pytest.raises(ModelError, match="manifest says 384"):
        Embedder(settings, write(dims=384))


def test_corrupt_model_file_fails_at_load(settings, broken_model):
    write, target, data = broken_model
    name = write()
    role = next(r for r in data["files"] if r != "tokenizer")
    model_file = target / data["files"][role]["path"]
    model_file.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="wrong sha256"):
        Embedder(settings, name)
    from es_faq.models.files import sha256_of
    data["files"][role]["sha256"] = sha256_of(model_file)
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        Embedder(settings, write())


def test_unknown_model_names_the_known_ones(settings):
    with pytest.raises(ModelError, match="known models: .*bge-small-zh-v1.5-s8"):
        Embedder(settings, "no-such-model")
