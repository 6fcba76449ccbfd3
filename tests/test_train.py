"""Training at small scale on CPU, for real: base weights, mining, fine-tuning, ONNX export, loading."""

import json
import os
import shutil
import uuid

import numpy as np
import pytest

from es_faq.config.settings import REPO_ROOT
from es_faq.errors import ModelError
from es_faq.models.manifest import MANIFEST_DIR, Manifest, verify
from es_faq.search.embed import Embedder
from es_faq.search.rerank import Reranker
from es_faq.train.base import BASE_MODEL, load_base, onnx_bert_weights

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


@pytest.fixture
def trained_name(settings, es):
    name = f"test-train-{uuid.uuid4().hex[:8]}"
    yield name
    (MANIFEST_DIR / f"{name}.json").unlink(missing_ok=True)
    shutil.rmtree(settings.models_path / name, ignore_errors=True)


# --- the embedder (es_faq/train/embedder.py), on a few dozen examples --------------------------------------
def test_corpus_examples_find_their_positives_and_keep_their_negatives(tmp_path):
    from es_faq.train.embedder import corpus_examples

    path = tmp_path / "train.tsv"
    path.write_text("花呗怎么还款\t花呗如何还钱\t1\n花呗怎么还款\t花呗怎么开通\t0\n借呗利率\t借呗利息多少\t1\n"
                    "花呗如何还钱\t花呗怎么还款\t1\n借呗利率\t借呗额度\t0\n", encoding="utf-8")
    examples = corpus_examples(path, "tiny", None, 13)
    assert [(e.query, e.positives, e.negatives) for e in examples] == [
        ("花呗怎么还款", ["花呗如何还钱"], ["花呗怎么开通"]),
        ("借呗利率", ["借呗利息多少"], ["借呗额度"]),
        ("花呗如何还钱", ["花呗怎么还款"], []),
    ]


def test_a_step_never_counts_a_positive_as_a_negative():
    import random

    from es_faq.train.embedder import Example, step_texts

    examples = [Example("q1", ["a", "b"], ["n1"], "t"), Example("q2", ["c"], [], "t")]
    queries, docs, positives = step_texts(examples, [0, 1], 2, ["a", "b", "c", "x", "y"], random.Random(3))
    assert queries == ["q1", "q2"] and docs[0] in {"a", "b"} and docs[1] == "c"
    assert docs[2] == "n1" and len(docs) == 6  # one positive each, then two negatives each
    assert not set(docs[2:4]) & positives[0] and not set(docs[4:6]) & positives[1]


def test_bench_examples_mine_negatives_without_the_gold_faq(settings, es, tmp_path):
    """A bench's train groups: each paraphrase finds its FAQ's texts; mined negatives are other FAQs'."""
    from es_faq.kb.faq import read_jsonl
    from es_faq.train.embedder import bench_examples

    bench = tmp_path / f"demo-{uuid.uuid4().hex[:6]}"
    bench.mkdir()
    shutil.copy(DEMO / "faqs.jsonl", bench / "faqs.jsonl")
    rows = [json.loads(line) for line in (DEMO / "queries.jsonl").open(encoding="utf-8")][:10]
    (bench / "queries.jsonl").write_text("".join(json.dumps({**r, "split": "train"}, ensure_ascii=False) + "\n"
                                                 for r in rows), encoding="utf-8")
    try:
        examples = bench_examples(settings, str(bench), True, 2, progress=False)
    finally:
        for index in es.cat.indices(index=f"bench-{bench.name}*", format="json", h="index").body:
            es.indices.delete(index=index["index"])
    faqs = {f.id: f for f in read_jsonl(bench / "faqs.jsonl")}
    owner = {t: f.id for f in faqs.values() for t in f.texts}
    paraphrases = [r for r in rows if r["kind"] == "paraphrase"]
    assert {e.query for e in examples} >= {r["query"] for r in paraphrases}
    assert sum(bool(e.negatives) for e in examples) >= len(paraphrases)
    for e in examples:
        gold = {owner[t] for t in e.positives}
        assert len(gold) == 1 and not {owner.get(t) for t in e.negatives} & gold


TINY_EMBEDDER = {"corpora": ["tiny"], "benches": [], "mine": [], "dev": {}, "dev_hard_cases": {}, "batch_size": 8,
                 "eval_every": 2, "checkpoint_every": 1}


def test_the_embedder_trains_resumes_exports_and_loads(settings, tiny_pairs, trained_name, tmp_path):
    """24 positive pairs, 3 steps: interrupted after one and resumed it ends where an uninterrupted run does;
    the export (dynamic INT8, run one text at a time) loads as the embedder and gives a text the same vector
    alone or among others."""
    from transformers import BertModel

    from es_faq.train.embedder import export_embedder, fit, recipe_of

    tiny = settings.replace(pairs_dir=tiny_pairs)
    whole = fit(tiny, recipe_of(**TINY_EMBEDDER), tmp_path / "whole", progress=False)
    assert whole["examples"] == 24 and whole["steps"] == 3 and whole["sources"] == {
        "tiny": {"examples": 24, "with_hard_negatives": 24}}
    assert [json.loads(line)["step"] for line in (tmp_path / "whole" / "log.jsonl").open()] == [2, 3]
    assert fit(tiny, recipe_of(**TINY_EMBEDDER), tmp_path / "resumed", progress=False, stop_after=1) is None
    assert fit(tiny, recipe_of(**TINY_EMBEDDER), tmp_path / "resumed", progress=False)["steps"] == 3
    a = BertModel.from_pretrained(tmp_path / "whole" / "final").state_dict()
    b = BertModel.from_pretrained(tmp_path / "resumed" / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    record = export_embedder(tiny, trained_name, tmp_path / "whole")
    assert record["quantization"] == "dynamic"
    manifest = Manifest.load(trained_name)
    assert manifest.task == "embedding" and set(manifest.files) == {"model", "model_int8", "tokenizer"}
    assert manifest.data["query_prefix"] == "" and manifest.quantization == "int8-dynamic"
    embedder = Embedder(settings, trained_name)
    assert embedder.runs_alone
    texts = ["花呗怎么延期还款", "怎么修改收货地址", "借款利息怎么算，利率是多少呢"]
    together = embedder.encode(texts)
    assert together.shape == (3, 512) and np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(together, np.vstack([embedder.encode([t]) for t in texts]))


def test_hard_cases_become_the_embedders_hard_negatives_and_queries():
    """A near-miss is what the paraphrase must not find in place of the text it was edited from; a meaning-keeping
    edit must find its text and the paraphrase."""
    from es_faq.train.embedder import Example, case_examples
    from es_faq.train.hardcases import Case

    near = Case("花呗怎么还款", "花呗如何还款", "花呗怎么不还款", 0, "negation")
    kept = Case("花呗怎么还款", "花呗如何还款", "请问花呗怎么还款", 1, "particle")
    assert case_examples([near, kept]) == [
        Example("花呗如何还款", ["花呗怎么还款"], ["花呗怎么不还款"], "hard:negation"),
        Example("请问花呗怎么还款", ["花呗如何还款", "花呗怎么还款"], [], "hard:particle")]


def test_an_embedder_run_with_hard_cases_logs_how_its_vectors_tell_them_apart(settings, tiny_pairs, demo_benches,
                                                                              tmp_path):
    """`hard_cases`: generated near-misses of the tiny corpus's positives join the run as hard negatives; the dev
    evaluation logs the cosine AUC on the demo bench's generated dev cases, kept in the run directory."""
    from es_faq.train.embedder import fit, recipe_of

    tiny = settings.replace(pairs_dir=tiny_pairs, bench_dir=demo_benches)
    recipe = recipe_of(**{**TINY_EMBEDDER, "hard_cases": 30, "dev_hard_cases": {"demo-bench": 30}, "eval_every": 100})
    record = fit(tiny, recipe, tmp_path / "hard", progress=False)
    hard = {k: v for k, v in record["sources"].items() if k.startswith("hard:")}
    negatives = sum(v["with_hard_negatives"] for v in hard.values())
    assert negatives >= 20 and sum(v["examples"] for v in hard.values()) > negatives  # near-misses and kept ones
    assert record["examples"] == 24 + sum(v["examples"] for v in hard.values())
    dev = record["dev"]["demo-bench hard cases"]
    assert dev["pairs"] >= 30 and 0 <= dev["auc"] <= 100
    assert (tmp_path / "hard" / "dev-hard-cases-demo-bench-30.tsv").exists()


def test_dense_ranks_count_the_faqs_above_the_best_gold_one():
    from es_faq.train.dense_eval import ranks

    # Three FAQs: two texts, one text, one text; vectors on the unit circle.
    texts = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], dtype=np.float32)
    owner = np.array([0, 0, 1, 2])
    queries = np.array([[0.8, 0.6], [-1, 0]], dtype=np.float32)
    # Query 0 scores FAQ 0 at 0.8 (its best text), FAQ 1 at 0.96, FAQ 2 at -0.8.
    assert ranks(queries, texts, owner, 3, [[0], [2]]).tolist() == [2, 1]
    assert ranks(queries, texts, owner, 3, [[0, 1], [0]]).tolist() == [1, 2]


# --- the cross-encoder (es_faq/train/cross_encoder.py), on a few dozen pairs ------------------------------
TINY_RECIPE = {"corpora": ["tiny"], "benches": [], "corpus_limit": None, "hard_cases": 0, "epochs": 1,
               "dev": {"tiny": 16}, "batch_size": 8, "max_tokens": 32, "eval_every": 2, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory):
    """A pairs_dir with a corpus `tiny`: paraphrases (1) and different questions (0) of the demo FAQs."""
    from es_faq.kb.faq import read_jsonl

    faqs = list(read_jsonl(DEMO / "faqs.jsonl"))
    rows = [f"{f.question}\t{f.similar_questions[0]}\t1\n" for f in faqs[:24] if f.similar_questions]
    rows += [f"{a.question}\t{b.question}\t0\n" for a, b in zip(faqs[:24], faqs[40:64], strict=True)]
    root = tmp_path_factory.mktemp("pairs")
    (root / "tiny").mkdir()
    (root / "tiny" / "train.tsv").write_text("".join(rows), encoding="utf-8")
    (root / "tiny" / "dev.tsv").write_text("".join(rows[::3]), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def demo_benches(tmp_path_factory):
    """A bench_dir with `demo-bench`: the demo's FAQs, every query of demo/queries.jsonl in its dev split."""
    benches = tmp_path_factory.mktemp("benches")
    (benches / "demo-bench").mkdir()
    shutil.copy(DEMO / "faqs.jsonl", benches / "demo-bench" / "faqs.jsonl")
    queries = [{**json.loads(line), "split": "dev"} for line in (DEMO / "queries.jsonl").open(encoding="utf-8")]
    (benches / "demo-bench" / "queries.jsonl").write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries), encoding="utf-8")
    return benches


def _fit(settings, tiny_pairs, run_dir, **kwargs):
    from es_faq.train.cross_encoder import fit, recipe_of

    return fit(settings.replace(pairs_dir=tiny_pairs), recipe_of(**TINY_RECIPE), run_dir, progress=False, **kwargs)


@pytest.fixture(scope="module")
def tiny_run(settings, tiny_pairs, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    return run_dir, _fit(settings, tiny_pairs, run_dir)


def test_cross_encoder_training_logs_dev_metrics_and_records_its_data(tiny_run):
    run_dir, record = tiny_run
    assert record["pairs"] == 48 and record["steps"] == 6
    assert record["sources"] == {"tiny": {"positive": 24, "negative": 24}}
    log = [json.loads(line) for line in (run_dir / "log.jsonl").open()]
    assert [e["step"] for e in log] == [2, 4, 6]
    assert set(log[-1]["dev"]["tiny"]) == {"pairs", "threshold", "accuracy", "f1", "auc"}
    assert (run_dir / "final" / "training.json").exists()


# What a GPU machine lacks (bench/gpu_train.py runs the trainer there): the search and serving stack.
NOT_ON_A_GPU_MACHINE = ("elasticsearch", "jieba", "pypinyin", "flask", "gunicorn", "pymysql")
BLOCKED_IMPORTS = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Missing())
import es_faq.train.cross_encoder as ce, es_faq.train.embedder as em, es_faq.train.steps
print(ce.fit.__name__, ce.build_pairs.__name__, em.fit.__name__)
"""


def test_the_trainers_need_no_search_stack():
    """Both trainers import where only torch, transformers and onnx are (a lent GPU machine)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", BLOCKED_IMPORTS.format(blocked=NOT_ON_A_GPU_MACHINE)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["fit", "build_pairs", "fit"]


# What travels per task: the recipe's starting point and data, and how many steps one epoch of it takes.
TRAVEL = {
    "reranker": ({"corpora": ["tiny"], "benches": [], "hard_cases": 0, "dev": {"tiny": 16}, "epochs": 2,
                  "batch_size": 8, "both_orders": True, "init": "reranker-zh", "eval_every": 2,
                  "checkpoint_every": 1000}, 6),
    "embedder": ({"corpora": ["tiny"], "benches": [], "mine": [], "dev": {"demo-bench": None},
                  "dev_hard_cases": {"demo-bench": 20}, "epochs": 2, "batch_size": 8, "init": "embedder-zh",
                  "eval_every": 2, "checkpoint_every": 1000}, 3),
}


@pytest.mark.parametrize("task", sorted(TRAVEL))
def test_a_run_travels_to_another_machine_and_back(settings, tiny_pairs, demo_benches, trained_name, tmp_path, task):
    """bench/gpu_train.py: the run's data packed here, trained "there" (another process and home; epochs cut to
    the time budget), its weights back in fp16 without the frozen word embeddings, put back onto the same
    starting point and exported; the exported model works."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    env = {**os.environ, "ES_FAQ_HOME": str(tmp_path / "here"), "ES_FAQ_MODEL_DIR": str(settings.models_path),
           "ES_FAQ_PAIRS_DIR": str(tiny_pairs), "ES_FAQ_BENCH_DIR": str(demo_benches)}

    def tool(*args: str) -> str:
        done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "gpu_train.py"), *args], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    recipe, steps = TRAVEL[task]
    tool("pack", trained_name, "--task", task, "--out", str(tmp_path / "payload"), "--recipe", json.dumps(recipe))
    said = tool("run", str(tmp_path / "payload" / "payload.tar.xz"), str(tmp_path / "back"), "--budget", "0.01",
                "--probe", "1", "--work", str(tmp_path / "there"))
    assert "the recipe's 2 epochs do not fit: training 1 instead" in said
    shards = sorted((tmp_path / "back").glob("weights-*.safetensors"))
    assert shards and all(p.stat().st_size <= 16 * 2**20 for p in shards)
    travelled = {k: v for p in shards for k, v in load_file(p).items()}
    assert not any(k.endswith("word_embeddings.weight") for k in travelled)
    assert {v.dtype for v in travelled.values()} == {torch.float16}

    tool("collect", trained_name, str(tmp_path / "back"))
    run_dir = tmp_path / "here" / "train-runs" / trained_name
    final = load_file(run_dir / "final" / "model.safetensors")
    assert all(torch.equal(final[k], v.float()) for k, v in travelled.items())
    record = json.loads((run_dir / "final" / "training.json").read_text())
    assert record["recipe"]["epochs"] == 1 and record["steps"] == steps and "weights_travelled" in record
    if task == "reranker":
        scores = Reranker(settings, trained_name).score_pairs([("小橙花怎么还款", "小橙花如何还钱")] * 2)
        assert len(scores) == 2 and scores[0] == pytest.approx(scores[1])
    else:
        assert record["dev"]["demo-bench"]["queries"] == 44 and 0 < record["dev"]["demo-bench"]["r@10"] <= 1
        # The dev hard cases were generated here and travelled: the machine there scored the same pairs.
        cases = (run_dir / "dev-hard-cases-demo-bench-20.tsv").read_text(encoding="utf-8").splitlines()
        hard = record["dev"]["demo-bench hard cases"]
        assert hard["pairs"] == len(cases) >= 20 and 0 <= hard["auc"] <= 100
        vectors = Embedder(settings, trained_name).encode(["小橙花怎么还款"])
        assert vectors.shape == (1, 512)


def test_an_interrupted_run_resumes_to_the_same_weights(settings, tiny_pairs, tiny_run, tmp_path):
    """Stopped after 3 steps and started again, a run ends where an uninterrupted one does."""
    from transformers import BertForSequenceClassification

    run_dir = tmp_path / "interrupted"
    assert _fit(settings, tiny_pairs, run_dir, stop_after=3) is None
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["step"] == 3
    assert not (run_dir / "final").exists()
    assert _fit(settings, tiny_pairs, run_dir)["steps"] == 6
    whole = BertForSequenceClassification.from_pretrained(tiny_run[0] / "final").state_dict()
    resumed = BertForSequenceClassification.from_pretrained(run_dir / "final").state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_a_step_can_read_each_pair_both_ways_under_its_one_label():
    from es_faq.train.cross_encoder import step_inputs
    from es_faq.train.pairs import Pair

    pairs = [Pair("怎么还款", "如何还钱", 1, "t"), Pair("怎么退款", "怎么退货", 0, "t")]
    assert step_inputs(pairs, [1, 0], False) == ([("怎么退款", "怎么退货"), ("怎么还款", "如何还钱")], [1, 0])
    texts, targets = step_inputs(pairs, [1, 0], True)
    assert texts == [("怎么退款", "怎么退货"), ("怎么还款", "如何还钱"),
                     ("怎么退货", "怎么退款"), ("如何还钱", "怎么还款")]
    assert [pairs[i].label for i in targets] == [0, 1, 0, 1]


def test_a_both_orders_run_trains_on_twice_the_sequences(settings, tiny_pairs, tmp_path):
    from es_faq.train.cross_encoder import fit, recipe_of

    record = fit(settings.replace(pairs_dir=tiny_pairs), recipe_of(**{**TINY_RECIPE, "both_orders": True}),
                 tmp_path / "both", progress=False)
    assert record["steps"] == 6 and record["recipe"]["both_orders"] is True


def test_a_run_refuses_another_recipe(settings, tiny_pairs, tiny_run):
    from es_faq.train.cross_encoder import fit, recipe_of

    with pytest.raises(ModelError, match=r"another recipe \(lr differ\)"):
        fit(settings.replace(pairs_dir=tiny_pairs), recipe_of(**{**TINY_RECIPE, "lr": 1e-3}), tiny_run[0],
            progress=False)


@pytest.mark.parametrize("quantization", ["static", "dynamic"])
def test_export_quantizes_and_loads(settings, tiny_pairs, tiny_run, quantization, tmp_path):
    """Both INT8 methods load as a reranker; static INT8 gives a pair the same score alone or in any batch."""
    from es_faq.train.cross_encoder import export_reranker

    name = f"test-ce-{quantization}-{uuid.uuid4().hex[:6]}"
    try:
        record = export_reranker(settings.replace(pairs_dir=tiny_pairs), name, tiny_run[0], quantization,
                                 calibration_size=32)
        assert record["quantization"] == quantization
        assert record.get("matmul_outputs") == ("float" if quantization == "static" else None)
        manifest = Manifest.load(name)
        assert manifest.task == "reranker" and set(manifest.files) == {"model", "model_int8", "tokenizer"}
        assert manifest.training_data == [{"corpus": "tiny", "kind": "pairs", "terms": "unknown: check before use"}]
        reranker = Reranker(settings, name)
        texts = ["怎么延期还款", "怎么修改收货地址", "借款利息怎么算，利率是多少呢", "提前还款有手续费吗"]
        together = reranker.score("可以推迟还款吗", texts)
        alone = np.array([reranker.score("可以推迟还款吗", [t])[0] for t in texts])
        assert np.isfinite(together).all()
        if quantization == "static":
            assert np.array_equal(together, alone), (together, alone)
            _ship_and_pull(settings, name, tmp_path)
    finally:
        (MANIFEST_DIR / f"{name}.json").unlink(missing_ok=True)
        shutil.rmtree(MANIFEST_DIR / name, ignore_errors=True)
        shutil.rmtree(settings.models_path / name, ignore_errors=True)


def _ship_and_pull(settings, name, tmp_path):
    """`models ship` pins the INT8 file in onnx_models/NAME/; `models pull` installs it from there."""
    from es_faq.models.manifest import pull, ship

    shipped = ship(Manifest.load(name), settings)
    manifest = Manifest.load(name)
    assert manifest.source["repo"] == name and set(manifest.files) == {"model_int8", "tokenizer"}
    assert all(len(spec["sha256"]) == 64 for spec in manifest.files.values())
    assert (shipped / "training.json").exists()
    elsewhere = settings.replace(model_dir=tmp_path / "models")
    pull(manifest, elsewhere)  # a fresh cache: copied from the repository, checked, no training
    assert verify(manifest, elsewhere) == []
    assert Reranker(elsewhere, name).score("还款", ["怎么还款"]).shape == (1,)


def test_a_shipped_cross_encoder_is_a_starting_point(settings):
    """`init`: the shipped INT8 reranker, dequantized into torch, scores as the file does (the file also
    quantizes activations, hence the tolerance) and orders pairs the same."""
    from transformers import BertForSequenceClassification

    from es_faq.train.base import load_trained

    model, tokenizer_file = load_trained(settings, "reranker-zh", BertForSequenceClassification, num_labels=1)
    from es_faq.models.onnx import load_tokenizer

    pairs = [("花呗怎么延期还款", "可以推迟还花呗吗"), ("借呗额度", "怎么提高借呗额度"),
             ("花呗怎么延期还款", "可以提前还花呗吗"), ("今天天气", "花呗还款")]
    encoded = load_tokenizer(tokenizer_file, 80).encode_batch(pairs)
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    features = {k: torch.tensor([getattr(e, a) for e in encoded]) for k, a in fields.items()}
    with torch.no_grad():
        ours = model.eval()(**features).logits[:, 0].numpy()
    # One order, as the torch model read them (score() would average both orders).
    shipped = Reranker(settings, "reranker-zh").score_ordered(pairs)
    assert np.abs(ours - shipped).max() < 1.0, (ours, shipped)
    assert list(np.argsort(ours)) == list(np.argsort(shipped))
    with pytest.raises(ModelError, match="not a cross-encoder"):
        load_trained(settings, settings.embed_model, BertForSequenceClassification, num_labels=1)


def test_a_continued_run_trains_from_the_shipped_model_and_keeps_its_data_terms(settings, tiny_pairs, tmp_path):
    from es_faq.train.cross_encoder import fit, recipe_of
    from es_faq.train.loop import training_data, with_init_data

    recipe = recipe_of(**{**TINY_RECIPE, "init": "reranker-zh"})
    record = fit(settings.replace(pairs_dir=tiny_pairs), recipe, tmp_path / "continued", progress=False)
    assert record["recipe"]["init"] == "reranker-zh" and record["steps"] == 6
    terms = with_init_data(training_data(recipe), recipe)
    assert {"tiny", "bq", "atec", "chip2019", "diac"} <= {t["corpus"] for t in terms}


def test_a_shipped_embedder_is_a_starting_point(settings, tiny_pairs, tmp_path):
    """`init` for the embedder: the shipped static-INT8 embedder-zh, dequantized into torch, points every text
    where the file does (cosine >= 0.97; the file also quantizes activations) and ranks the same FAQ first;
    a continued tiny run trains from it and inherits its data terms. Only trained embedders qualify."""
    from transformers import BertModel

    from es_faq.models.onnx import load_tokenizer
    from es_faq.train.base import load_trained
    from es_faq.train.embedder import fit, recipe_of
    from es_faq.train.loop import training_data, with_init_data

    model, tokenizer_file = load_trained(settings, "embedder-zh", BertModel, task="embedding",
                                         add_pooling_layer=False)
    texts = ["花呗怎么延期还款", "可以推迟还花呗吗", "怎么提高借呗额度", "今天天气怎么样"]
    encoded = load_tokenizer(tokenizer_file, 64).encode_batch(texts)
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    features = {k: torch.tensor([getattr(e, a) for e in encoded]) for k, a in fields.items()}
    with torch.no_grad():
        ours = torch.nn.functional.normalize(model.eval()(**features).last_hidden_state[:, 0], dim=-1).numpy()
    shipped = Embedder(settings, "embedder-zh").encode(texts)
    assert (ours * shipped).sum(axis=1).min() >= 0.97  # bge-small-zh-v1.5 itself: 0.76-0.86
    assert np.argmax(ours[1:] @ ours[0]) == np.argmax(shipped[1:] @ shipped[0]) == 0
    with pytest.raises(ModelError, match="not an embedder es-faq trained"):
        load_trained(settings, "bge-small-zh-v1.5-s8", BertModel, task="embedding", add_pooling_layer=False)
    with pytest.raises(ModelError, match="es-faq trained"):
        load_trained(settings, "reranker-zh", BertModel, task="embedding", add_pooling_layer=False)

    recipe = recipe_of(**{**TINY_EMBEDDER, "init": "embedder-zh"})
    record = fit(settings.replace(pairs_dir=tiny_pairs), recipe, tmp_path / "continued", progress=False)
    assert record["recipe"]["init"] == "embedder-zh" and record["steps"] == 3
    assert {"tiny", "bq", "diac"} <= {t["corpus"] for t in with_init_data(training_data(recipe), recipe)}


def test_mined_negatives_never_hold_the_gold_faq(searcher, demo_alias):
    from es_faq.kb.faq import read_jsonl
    from es_faq.train.pairs import bench_groups, mined_pairs

    groups = bench_groups(DEMO, "test")[:6]
    pairs = mined_pairs(searcher, demo_alias, groups, "demo", per_query=2, progress=False)
    assert pairs and all(p.label == 0 and p.source == "demo:mined" for p in pairs)
    by_text = {f.question: f.id for f in read_jsonl(DEMO / "faqs.jsonl")}
    gold = {t: g.faq.id for g in groups for t in [*g.faq.texts, *g.paraphrases]}
    assert all(by_text[p.text2] != gold[p.text1] for p in pairs)


def test_an_embedder_teaches_through_its_cosine_on_the_labels_scale(settings, tiny_pairs, tmp_path):
    """An embedder as the teacher: each pair's cosine, put on a logit scale by a logistic fit on the run's labels,
    scored once and kept with the run; the targets move with it."""
    from es_faq.search.embed import Embedder
    from es_faq.train.cross_encoder import build_pairs, fit, recipe_of, targets, teacher_logits
    from es_faq.train.pairs import Pair

    tiny = settings.replace(pairs_dir=tiny_pairs)
    recipe = {**TINY_RECIPE, "teacher": "embedder-zh", "distill_weight": 1.0}
    taught = fit(tiny, recipe_of(**recipe), tmp_path / "taught", progress=False)
    assert taught["steps"] == 6
    pairs = build_pairs(tiny, recipe_of(**recipe), tmp_path / "taught", progress=False)
    cached = np.load(next((tmp_path / "taught").glob("teacher-*.npy")))
    labels = np.array([p.label for p in pairs])
    assert cached.shape == (len(pairs),)
    assert cached[labels == 1].mean() > 0 > cached[labels == 0].mean()  # paraphrases over, different questions under
    vectors = Embedder(settings, "embedder-zh").encode([pairs[0].text1, pairs[0].text2, pairs[1].text1, pairs[1].text2])
    cosines = np.array([vectors[0] @ vectors[1], vectors[2] @ vectors[3]])
    # A straight line of the cosine (the fit's), increasing: the teacher orders pairs as the embedder does.
    slope = (cached[0] - cached[1]) / (cosines[0] - cosines[1])
    assert slope > 0 and np.isclose(cached[0] - slope * cosines[0], cached[1] - slope * cosines[1], atol=1e-3)
    assert np.array_equal(teacher_logits(tiny, "embedder-zh", pairs, tmp_path / "taught"), cached)  # kept, not redone
    with pytest.raises(ModelError, match="both labels"):
        teacher_logits(tiny, "embedder-zh", [p for p in pairs if p.label == 1], tmp_path / "one-label")
    # On the corpora only: a generated near-miss and a bench paraphrase keep their labels; the corpus pairs are mixed
    # with the teacher as before (their cosines fitted on their own labels: the same pairs, the same fit).
    mixed = [*pairs, Pair("小橙花可以提前还款吗", "小橙花怎么延期还款？", 0, "hard:antonym"),
             Pair("可以推迟还小橙花吗", "小橙花怎么延期还款？", 1, "diac:paraphrase")]
    every = targets(tiny, recipe_of(**recipe), mixed, tmp_path / "every", progress=False)
    corpora = targets(tiny, recipe_of(**{**recipe, "distill_on": "corpora"}), mixed, tmp_path / "corpora",
                      progress=False)
    assert list(corpora[-2:]) == [0.0, 1.0] and 0 < every[-2] and every[-1] < 1
    # On the labelled pairs: the bench paraphrase is taught, the generated near-miss keeps its label.
    real = targets(tiny, recipe_of(**{**recipe, "distill_on": "real"}), mixed, tmp_path / "real", progress=False)
    assert real[-2] == 0.0 and 0 < real[-1] < 1
    assert np.allclose(corpora[:-2], 1 / (1 + np.exp(-cached)), atol=1e-6)
    with pytest.raises(ModelError, match="distill_on='bench'"):
        recipe_of(**{**recipe, "distill_on": "bench"})


def test_a_student_keeps_the_layers_asked_learns_from_its_teacher_and_exports(settings, tiny_pairs, tmp_path):
    """`layers` cuts the encoder (a pair then costs half as much with 2 of 4 layers); `teacher` mixes the shipped
    model's both-order logits into the targets, scored once and kept with the run; the export loads as a reranker."""
    from transformers import BertForSequenceClassification

    from es_faq.train.cross_encoder import build_pairs, export_reranker, fit, recipe_of

    tiny = settings.replace(pairs_dir=tiny_pairs)
    student = {**TINY_RECIPE, "init": "reranker-zh", "layers": [0, 3], "teacher": "reranker-zh"}
    taught = fit(tiny, recipe_of(**{**student, "distill_weight": 1.0}), tmp_path / "taught", progress=False)
    labelled = fit(tiny, recipe_of(**{**student, "distill_weight": 0.0}), tmp_path / "labelled", progress=False)
    assert taught["steps"] == labelled["steps"] == 6
    model = BertForSequenceClassification.from_pretrained(tmp_path / "taught" / "final")
    assert model.config.num_hidden_layers == len(model.bert.encoder.layer) == 2
    other = BertForSequenceClassification.from_pretrained(tmp_path / "labelled" / "final")
    assert not torch.equal(model.classifier.weight, other.classifier.weight)  # the targets differ, so do the weights
    cached = np.load(next((tmp_path / "taught").glob("teacher-*.npy")))
    pairs = build_pairs(tiny, recipe_of(**student), tmp_path / "taught", progress=False)
    teacher = Reranker(settings.replace(rerank_both_orders=True), "reranker-zh")
    assert cached.shape == (len(pairs),)
    assert np.allclose(cached[:5], teacher.score_pairs([(p.text1, p.text2) for p in pairs[:5]]), atol=1e-5)
    with pytest.raises(ModelError, match="layer indices from 0 to 3"):
        fit(tiny, recipe_of(**{**student, "layers": [0, 4]}), tmp_path / "bad", progress=False)
    name = f"test-ce-student-{uuid.uuid4().hex[:6]}"
    try:
        export_reranker(tiny, name, tmp_path / "taught", calibration_size=32)
        scores = Reranker(settings, name).score("可以推迟还款吗", ["怎么延期还款", "怎么修改收货地址"])
        assert scores.shape == (2,) and np.isfinite(scores).all()
        terms = {t["corpus"] for t in Manifest.load(name).training_data}
        assert {"tiny", "bq", "atec", "chip2019", "diac"} <= terms  # the teacher's data terms come along
    finally:
        (MANIFEST_DIR / f"{name}.json").unlink(missing_ok=True)
        shutil.rmtree(MANIFEST_DIR / name, ignore_errors=True)
        shutil.rmtree(settings.models_path / name, ignore_errors=True)
