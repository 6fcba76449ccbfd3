"""Model provisioning without a network or a node: what `models pull` does with a model it cannot fetch."""

import pytest

from es_faq.errors import ModelError
from es_faq.models.manifest import Manifest, pull, verify


def test_pull_never_trains_a_missing_trained_model(settings, tmp_path):
    """embedder-bq is a recipe (trained here, not shipped): with an empty cache, a ModelError says how to train it."""
    empty = settings.replace(model_dir=tmp_path / "models")
    manifest = Manifest.load("embedder-bq")
    assert "train" in manifest.source and "repo" not in manifest.source
    with pytest.raises(ModelError, match=r"does not train: train it with `es-faq train embedder \.\.\.`"):
        pull(manifest, empty)
    assert verify(manifest, empty) and not (tmp_path / "models" / "embedder-bq").exists()


def test_quantize_ships_a_static_int8_embedder_whose_vectors_ignore_batch_mates(settings, tmp_path):
    """`es-faq models quantize` on tiny calibration data: shipped with pinned files, pulled from
    onnx_models/, and a text's vector equal to the bit alone or in a batch, close to fp32's."""
    import json
    import shutil

    import numpy as np

    from es_faq.models.manifest import MANIFEST_DIR
    from es_faq.models.quantize import derive_static
    from es_faq.search.embed import Embedder

    faqs = tmp_path / "faqs.jsonl"
    questions = ["花呗怎么延期还款", "借呗额度怎么提升", "退货运费谁出", "怎么修改收货地址", "账号怎么注销",
                 "花呗逾期会怎样", "如何开通借呗", "信用卡还款日是哪天"]
    faqs.write_text("".join(json.dumps({"id": str(i), "question": q, "answer": "a"}, ensure_ascii=False) + "\n"
                            for i, q in enumerate(questions)), encoding="utf-8")
    name = f"test-s8-{tmp_path.name[-8:]}".lower()
    cache = settings.replace(model_dir=tmp_path / "models", embed_model=name)
    shutil.copytree(settings.models_path / "bge-small-zh-v1.5", cache.models_path / "bge-small-zh-v1.5")
    try:
        derive_static(cache, "bge-small-zh-v1.5", name, [faqs], size=8, seed=1)
        manifest = Manifest.load(name)
        assert manifest.source["derived"]["from"] == "bge-small-zh-v1.5" and manifest.quantization == "int8-static"
        pull(manifest, cache)  # copied from onnx_models/<name>/, sha256 checked
        assert verify(manifest, cache) == []
        static, fp32 = Embedder(cache), Embedder(cache, "bge-small-zh-v1.5")
        texts = ["花呗可以推迟还吗", "借呗提额", "我想退货"]
        together = static.encode(texts, batch_size=32)
        assert np.array_equal(together, np.vstack([static.encode([t], batch_size=1) for t in texts]))
        reference = fp32.encode(texts)
        assert ((together * reference).sum(axis=1) > 0.9).all()
        assert manifest.source["derived"]["matmul_outputs"] == "float"
        _float_outputs_beat_int8_outputs(cache, static, manifest, questions, texts, reference, tmp_path)
    finally:
        shutil.rmtree(MANIFEST_DIR / name, ignore_errors=True)
        (MANIFEST_DIR / f"{name}.json").unlink(missing_ok=True)


def test_requantize_ships_a_trained_embedders_int8_weights_unchanged_in_dynamic_int8(settings, tmp_path):
    """`es-faq models requantize embedder-zh NAME`: the shipped static-INT8 embedder's weights, dequantized,
    exported and quantized per channel again, are the same int8 tensors; the file is pinned, pulled from
    onnx_models/, runs one text at a time, and its vectors lie close to the static file's."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from es_faq.models.manifest import MANIFEST_DIR
    from es_faq.search.embed import Embedder
    from es_faq.train.embedder import requantize_embedder

    def int8_tensors(path) -> list[bytes]:
        graph = onnx.load(str(path)).graph
        return sorted(numpy_helper.to_array(t).tobytes() for t in graph.initializer
                      if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and len(t.dims) == 2)

    name = f"test-dyn-{tmp_path.name[-8:]}".lower()
    cache = settings.replace(model_dir=tmp_path / "models")
    shutil.copytree(settings.models_path / "embedder-zh", cache.models_path / "embedder-zh")
    try:
        requantize_embedder(cache, "embedder-zh", name)
        manifest, source = Manifest.load(name), Manifest.load("embedder-zh")
        assert manifest.quantization == "int8-dynamic" and manifest.source["derived"]["from"] == "embedder-zh"
        assert manifest.source["train"] == source.source["train"] and manifest.data["query_prefix"] == ""
        pull(manifest, cache)  # copied from onnx_models/<name>/, sha256 checked
        assert verify(manifest, cache) == []
        assert int8_tensors(manifest.file(cache, "model")) == int8_tensors(source.file(cache, "model_int8"))
        dynamic, static = Embedder(cache, name), Embedder(cache, "embedder-zh")
        assert dynamic.runs_alone and not static.runs_alone
        texts = ["花呗可以推迟还吗", "借呗提额", "我想退货"]
        assert ((dynamic.encode(texts) * static.encode(texts)).sum(axis=1) > 0.95).all()
    finally:
        shutil.rmtree(MANIFEST_DIR / name, ignore_errors=True)
        (MANIFEST_DIR / f"{name}.json").unlink(missing_ok=True)


def _float_outputs_beat_int8_outputs(settings, static, manifest, calibration, texts, reference, tmp_path):
    """The shipped layout leaves every MatMul's output in float (nothing quantizes it again), and its
    vectors lie closer to fp32's than the earlier layout's, calibrated alike."""
    import onnx

    from es_faq.models.onnx import load_tokenizer, onnx_session
    from es_faq.models.quantize import quantize

    def requantized_matmuls(path) -> int:
        graph = onnx.load(str(path)).graph
        matmul_outputs = {n.output[0] for n in graph.node if n.op_type == "MatMul"}
        return sum(1 for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in matmul_outputs)

    assert requantized_matmuls(manifest.file(settings, "model")) == 0
    tokenizer = load_tokenizer(manifest.file(settings, "tokenizer"), settings.embed_max_tokens)
    earlier = quantize(Manifest.load("bge-small-zh-v1.5").file(settings, "model"), tmp_path / "int8.onnx", "static",
                       tokenizer, calibration, ranges="percentile", length=settings.embed_max_tokens,
                       matmul_outputs="int8")
    assert requantized_matmuls(earlier) > 0
    shipped_session = static.session
    static.session = onnx_session(earlier, settings)
    try:
        vectors = static.encode(texts, batch_size=32)
    finally:
        static.session = shipped_session
    float_layout = (static.encode(texts, batch_size=32) * reference).sum(axis=1)
    assert float_layout.mean() > (vectors * reference).sum(axis=1).mean(), float_layout
