"""Dictionary-change preview (es_faq/evaluation/preview.py) on the real node: the CLI replaying the query log,
the admin API replaying a bench, and a check that the preview predicts what committing the change does
while committing nothing itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from click.testing import CliRunner

from es_faq.api.context import SEARCHER
from es_faq.api.querylog import QueryLog
from es_faq.cli import cli
from es_faq.config.settings import REPO_ROOT
from es_faq.engine.client import live_indices
from es_faq.evaluation.preview import SHADOW_PREFIX, preview
from es_faq.kb.faq import read_jsonl
from es_faq.kb.index import build
from es_faq.search.analyze import Analyzer
from es_faq.search.dictionary import DictionaryStore
from es_faq.search.pipeline import Searcher
from tests.conftest import DEMO_FAQS, DEMO_QUERIES, _drop_alias_family, drop_query_log
from tests.test_admin import AUTH, api_schema, conforms, dict_index, finished_job, jobs_index, make_client  # noqa: F401

# Without the user word, jieba cuts "小橙借借了一笔" apart and that query loses its FAQ; FAQs are
# segmented without it too, so the preview must re-analyse them (a shadow index).
CHANGE = ["remove", "word", "小橙借"]
QUERIES = [json.loads(line)["query"] for line in DEMO_QUERIES.read_text(encoding="utf-8").splitlines()][:20]


@pytest.fixture
def world(settings, es, embedder):
    """The demo knowledge base analysed with the seed dictionaries, all in indices of this test's own,
    and a query log holding QUERIES' searches."""
    tag = uuid.uuid4().hex[:8]
    ours = settings.replace(index_alias=f"test-preview-{tag}", dict_index=f"test-preview-dict-{tag}",
                            vocab_index=f"test-preview-vocab-{tag}", query_log_prefix=f"test-preview-log-{tag}",
                            dict_check_interval_s=0.0)
    store = DictionaryStore(es, ours)
    store.import_dir(REPO_ROOT / "analyzers")
    analyzer = Analyzer(ours, store)
    build(es, ours, read_jsonl(DEMO_FAQS), analyzer, embedder, progress=False)
    searcher = Searcher(ours, es, embedder, analyzer)
    log = QueryLog(ours, es).start()
    for query in QUERIES:
        log.log_search(uuid.uuid4().hex, searcher.search(query, 5, "bm25"), None, None)
    assert log.flush()
    log.close()
    es.indices.refresh(index=f"{ours.query_log_prefix}-*")
    yield ours, searcher
    _drop_alias_family(es, ours.index_alias)
    drop_query_log(es, ours.query_log_prefix)
    es.options(ignore_status=404).indices.delete(index=f"{ours.dict_index},{ours.vocab_index}")


def _state(es, settings) -> tuple:
    """Everything a preview must leave as it was: the dictionaries, the alias and its index. (Searching
    an index may store its vocabulary, a cache; none may be left for the shadow index.)"""
    store = DictionaryStore(es, settings)
    indices = live_indices(es, settings.index_alias)
    vocab = es.options(ignore_status=404).search(index=settings.vocab_index, size=100, source=False).body
    assert not [h["_id"] for h in vocab.get("hits", {}).get("hits", []) if h["_id"].startswith(SHADOW_PREFIX)]
    return store.version(), store.load().entries(), indices, es.count(index=settings.index_alias)["count"]


def test_the_cli_preview_predicts_the_commit_and_commits_nothing(world, es, embedder):
    settings, searcher = world
    before = _state(es, settings)
    env = {"ES_FAQ_INDEX_ALIAS": settings.index_alias, "ES_FAQ_DICT_INDEX": settings.dict_index,
           "ES_FAQ_VOCAB_INDEX": settings.vocab_index, "ES_FAQ_QUERY_LOG_PREFIX": settings.query_log_prefix}
    result = CliRunner().invoke(cli, ["dict", "preview", *CHANGE, "--last", "100", "--mode", "bm25", "--json"],
                                env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["committed"] is False and report["queries"] == len(set(QUERIES))
    assert report["source"]["shadow_index"].startswith(SHADOW_PREFIX)
    assert _state(es, settings) == before  # dictionaries, alias and index as they were
    assert not es.indices.get(index=f"{SHADOW_PREFIX}*", expand_wildcards="all").body  # the shadow is gone
    changed = {row["query"]: row for row in report["changed"]}
    assert changed, "removing the word moves no query's first FAQ: the preview saw no change"
    for row in changed.values():
        assert "小橙借" in row["before"]["tokens"] and "小橙借" not in row["after"]["tokens"]

    # Commit the change and rebuild: the replayed queries now lead with what the preview said.
    DictionaryStore(es, settings).remove(CHANGE[1], CHANGE[2:])
    committed = Analyzer(settings, DictionaryStore(es, settings))
    build(es, settings, read_jsonl(DEMO_FAQS), committed, embedder, progress=False)
    now = Searcher(settings, es, embedder, committed)
    unchanged = [q for q in QUERIES if q not in changed][:3]
    for query in [*changed, *unchanged]:
        result = now.search(query, 5, "bm25")
        expected = changed[query]["after"] if query in changed else None
        if expected:
            assert (result.hits[0].faq_id, result.decision.action) == (expected["top"], expected["decision"]), query
        else:
            assert result.hits[0].faq_id == searcher.search(query, 5, "bm25").hits[0].faq_id, query


def _previews_of(es, source: str) -> list[str]:
    mappings = es.options(ignore_status=404).indices.get_mapping(index=f"{SHADOW_PREFIX}*", expand_wildcards="all")
    return sorted(name for name, body in mappings.body.items()
                  if ((body["mappings"].get("_meta") or {}).get("es_faq") or {}).get("source") == source)


def test_a_killed_previews_index_is_deleted_by_the_next_preview(world, es):
    # kill -9 during a `word` preview left its es-faq-preview-... index for good.
    settings, _ = world
    env = {**os.environ, "ES_FAQ_INDEX_ALIAS": settings.index_alias, "ES_FAQ_DICT_INDEX": settings.dict_index,
           "ES_FAQ_VOCAB_INDEX": settings.vocab_index, "ES_FAQ_QUERY_LOG_PREFIX": settings.query_log_prefix}
    args = ["dict", "preview", *CHANGE, "--last", "100", "--mode", "bm25", "--json"]
    killed = subprocess.Popen([sys.executable, "-m", "es_faq", *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not _previews_of(es, settings.index_alias):
            assert killed.poll() is None and time.monotonic() < deadline, "the preview made no shadow index"
            time.sleep(0.05)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    left = _previews_of(es, settings.index_alias)
    assert left, "the shadow index went with its process: nothing to clean"
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert _previews_of(es, settings.index_alias) == []  # the killed one's, and the new one's
    vocab = es.options(ignore_status=404).mget(index=settings.vocab_index, ids=left).body
    assert not [doc for doc in vocab.get("docs", []) if doc.get("found")]


def test_a_bad_preview_says_what_to_do(world):
    settings, _ = world
    env = {"ES_FAQ_DICT_INDEX": settings.dict_index, "ES_FAQ_QUERY_LOG_PREFIX": f"{settings.query_log_prefix}-none"}
    missing = CliRunner().invoke(cli, ["dict", "preview", "remove", "word", "没有这个词"], env=env)
    assert missing.exit_code == 2 and "no word entry '没有这个词'" in missing.output
    empty = CliRunner().invoke(cli, ["dict", "preview", "add", "synonym", "分期", "拆分"], env=env)
    assert empty.exit_code == 2 and "holds no searches to replay" in empty.output and "--bench" in empty.output


def test_the_admin_preview_compares_a_bench_s_metrics(world, make_client, conforms, es):  # noqa: F811
    settings, _ = world
    client = make_client(index_alias=settings.index_alias, dict_index=settings.dict_index,
                         vocab_index=settings.vocab_index, bench_dir=REPO_ROOT, decide_depth=0)
    before = _state(es, settings)
    body = {"action": "add", "kind": "synonym", "terms": ["分期", "拆分"], "bench": "demo", "split": "all",
            "limit": 10, "mode": "bm25"}
    started = conforms("POST", "/v1/admin/dictionary-preview",
                       client.post("/v1/admin/dictionary-preview", json=body, headers=AUTH))
    assert started.status_code == 202, started.get_json()
    job = started.get_json()  # a background job (es_faq/api/jobs.py): poll it
    assert job["state"] == "queued" and started.headers["Location"] == job["poll"] == f"/v1/admin/jobs/{job['id']}"
    job = finished_job(client, conforms, job["id"])
    assert job["state"] == "done" and job["error"] is None, job
    report = job["result"]
    assert report["source"]["bench"] == "demo" and report["source"]["shadow_index"] is None  # synonyms: query side
    assert report["queries"] == 10
    metrics = report["metrics"]
    assert metrics["delta"]["R@1"] == pytest.approx(metrics["after"]["R@1"] - metrics["before"]["R@1"])
    # The body the endpoint answered when the preview ran in the request: preview() in this process.
    served = client.application.extensions[SEARCHER]
    assert report == preview(served, "add", "synonym", ["分期", "拆分"], bench=REPO_ROOT / "demo", split="all",
                             limit=10, mode="bm25")
    assert _state(es, settings) == before
    for bad, says in [({**body, "bench": "../demo"}, "bench must name"), ({**body, "last": 0}, "last must be"),
                      ({**body, "action": "replace"}, "unknown action")]:
        refused = conforms("POST", "/v1/admin/dictionary-preview",
                           client.post("/v1/admin/dictionary-preview", json=bad, headers=AUTH))
        assert refused.status_code == 400 and says in refused.get_json()["error"]["message"], bad
