"""The query log against the real node: search and feedback documents, the full queue, and the report."""

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from es_faq.api.app import create_app
from es_faq.api.querylog import QueryLog
from es_faq.config.load import load_settings
from es_faq.errors import ConfigError
from es_faq.kb.querylog import prune
from es_faq.kb.report import query_log_report
from es_faq.search.pipeline import Searcher
from tests.conftest import drop_query_log
from tests.test_api import DEMO_QUERY
from tests.test_cli import es_faq


@pytest.fixture
def prefix(es):
    name = f"test-querylog-{uuid.uuid4().hex[:8]}"
    yield name
    drop_query_log(es, name)


@pytest.fixture
def app(settings, es, embedder, analyzer, demo_alias, prefix):
    served = settings.replace(index_alias=demo_alias, query_log_prefix=prefix)
    app = create_app(served, searcher=Searcher(served, es, embedder, analyzer))
    yield app
    app.extensions["es_faq.querylog"].close()


def _today(prefix: str) -> str:
    return f"{prefix}-{datetime.now(timezone.utc):%Y.%m.%d}"


def _logged(es, app, request_id: str, until, timeout_s: float = 10.0) -> dict:
    """The request's log document once `until(doc)` holds: flush the writer, then poll the node."""
    assert app.extensions["es_faq.querylog"].flush()
    deadline = time.monotonic() + timeout_s
    doc = None
    while time.monotonic() < deadline:
        # A realtime GET sees the write before the index refreshes.
        found = es.options(ignore_status=404).get(index=_today(app.config["ES_FAQ_SETTINGS"].query_log_prefix),
                                                  id=request_id).body
        doc = found.get("_source")
        if doc is not None and until(doc):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"no matching query-log document for {request_id} in {timeout_s} s: {doc}")


def _sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_search_is_logged_and_feedback_updates_it(es, app, prefix):
    client = app.test_client()
    logged_before = _sample("es_faq_querylog_logged_total", kind="search")
    response = client.post("/v1/search", json={"query": DEMO_QUERY, "k": 3, "channel_id": "app.ios", "user_id": "u-1"},
                           headers={"X-Request-ID": "ql-search-1"})
    assert response.status_code == 200
    doc = _logged(es, app, "ql-search-1", lambda d: "query" in d)
    body = response.get_json()
    assert doc["query"] == DEMO_QUERY and doc["normalized"] and doc["mode"] == "hybrid"
    assert doc["hit_count"] == 3 and doc["hits"][0]["faq_id"] == "demo-031"
    assert doc["hits"][0]["score"] == body["hits"][0]["score"]
    assert doc["channel_id"] == "app.ios" and doc["user_id"] == "u-1" and doc["decision"] == body["decision"]["action"]
    assert doc["latency_ms"] > 0 and doc["@timestamp"] and isinstance(doc["rewrites"], list)
    assert _sample("es_faq_querylog_logged_total", kind="search") == logged_before + 1
    mapping = es.indices.get_mapping(index=_today(prefix)).body[_today(prefix)]["mappings"]
    assert mapping["properties"]["normalized"]["type"] == "keyword"  # from the template, not dynamic

    feedback = client.post("/v1/feedback", json={"request_id": "ql-search-1", "faq_id": "demo-031",
                                                 "feedback": "helpful"})
    assert feedback.status_code == 202 and feedback.get_json() == {"request_id": "ql-search-1", "status": "accepted"}
    doc = _logged(es, app, "ql-search-1", lambda d: "feedback" in d)
    assert doc["feedback"] == "helpful" and doc["feedback_faq_id"] == "demo-031"
    assert doc["query"] == DEMO_QUERY and doc["hit_count"] == 3  # the search's fields are kept


def test_feedback_before_its_search_is_written_is_kept(es, app):
    client = app.test_client()
    assert client.post("/v1/feedback", json={"request_id": "ql-early", "faq_id": "demo-031",
                                             "feedback": "unhelpful"}).status_code == 202
    _logged(es, app, "ql-early", lambda d: d.get("feedback") == "unhelpful")
    response = client.post("/v1/search", json={"query": DEMO_QUERY}, headers={"X-Request-ID": "ql-early"})
    assert response.status_code == 200
    doc = _logged(es, app, "ql-early", lambda d: "query" in d)
    assert doc["feedback"] == "unhelpful" and doc["hit_count"] == 10


@pytest.mark.parametrize("body, word", [
    ({"faq_id": "demo-031", "feedback": "helpful"}, "request_id is required"),
    ({"request_id": "r1", "faq_id": "demo-031", "feedback": "meh"}, "feedback must be one of"),
    ({"request_id": "has space", "faq_id": "demo-031", "feedback": "helpful"}, "request_id must be"),
    ({"request_id": "r1", "faq_id": "", "feedback": "helpful"}, "faq_id must be"),
    ({"request_id": "r1", "faq_id": 31, "feedback": "helpful"}, "faq_id must be a string"),
    ({"request_id": "r1", "faq_id": "demo-031", "feedback": "helpful", "score": 5}, "unknown field"),
    (["r1"], "must be a JSON object"),
])
def test_bad_feedback_is_400_invalid_input(app, body, word):
    response = app.test_client().post("/v1/feedback", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input" and word in response.get_json()["error"]["message"]


def test_a_full_queue_drops_without_blocking(settings, es, searcher, demo_alias, prefix):
    # A queue of one and no writer thread: the second document has nowhere to go.
    querylog = QueryLog(settings.replace(query_log_prefix=prefix), es, queue_size=1)
    result = searcher.search(DEMO_QUERY, 1, index=demo_alias)
    dropped = _sample("es_faq_querylog_dropped_total", reason="queue_full")
    querylog.log_search("ql-full-1", result, None, None)
    started = time.perf_counter()
    querylog.log_search("ql-full-2", result, None, None)
    querylog.log_feedback("ql-full-1", "demo-031", "clicked")
    assert time.perf_counter() - started < 0.05
    assert _sample("es_faq_querylog_dropped_total", reason="queue_full") == dropped + 2


def test_report_counts_no_match_and_clusters_paraphrases(settings, es, embedder, prefix):
    served = settings.replace(query_log_prefix=prefix)
    assert QueryLog(served, es).ensure_template()
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    rows = [("怎么注销我的账号", 0, None), ("我想把账号注销掉", 0, None), ("怎么注销我的账号", 0, None),
            ("信用卡年费多少钱", 2, "unhelpful"), ("可以推迟还小橙花吗", 3, "helpful"), ("怎么还款", 3, None)]
    for i, (query, hit_count, feedback) in enumerate(rows):
        doc = {"@timestamp": now, "request_id": f"r{i}", "query": query, "normalized": query, "hit_count": hit_count,
               "hits": [{"faq_id": f"demo-{n:03d}", "score": 1.0} for n in range(hit_count)], "mode": "hybrid"}
        if feedback:
            doc["feedback"] = feedback
        es.index(index=f"{prefix}-{datetime.now(timezone.utc):%Y.%m.%d}", id=f"r{i}", document=doc)
    es.indices.refresh(index=f"{prefix}-*")

    report = query_log_report(es, served, since="1d", top=5, embedder=embedder)
    assert report["total_searches"] == 6 and report["no_match"] == 3 and report["no_match_rate"] == 0.5
    assert report["top_no_match"] == [{"query": "怎么注销我的账号", "count": 2},
                                      {"query": "我想把账号注销掉", "count": 1}]
    assert report["top_unhelpful"] == [{"query": "信用卡年费多少钱", "count": 1}]
    assert report["clusters"][0] == {"representative": "怎么注销我的账号", "count": 3,
                                     "queries": ["怎么注销我的账号", "我想把账号注销掉"]}
    assert [c["queries"] for c in report["clusters"][1:]] == [["信用卡年费多少钱"]]


def test_report_with_no_log_yet(settings, es, embedder, prefix):
    report = query_log_report(es, settings.replace(query_log_prefix=prefix), embedder=embedder)
    assert report["total_searches"] == 0 and report["clusters"] == [] and report["no_match_rate"] == 0.0


def _daily_indices(es, prefix: str) -> set[str]:
    return {row["index"] for row in es.cat.indices(index=f"{prefix}-*", format="json", h="index").body}


@pytest.fixture
def dated_log(es, prefix):
    """Daily query-log indices 120, 91, 90, 89 and 0 days old, and two indices that only look alike."""
    today = datetime.now(timezone.utc).date()
    names = {age: f"{prefix}-{today - timedelta(days=age):%Y.%m.%d}" for age in (120, 91, 90, 89, 0)}
    others = [f"{prefix}-archive", f"{prefix}-2019.13.01"]
    for name in [*names.values(), *others]:
        es.indices.create(index=name, settings={"number_of_shards": 1, "number_of_replicas": 0})
    return names, others


def test_prune_deletes_only_days_past_retention(settings, es, prefix, dated_log):
    names, others = dated_log
    kept = {names[89], names[0], *others}
    retention = settings.replace(query_log_prefix=prefix, query_log_retention_days=90)
    dry = prune(es, retention, dry_run=True)
    assert sorted(dry["deleted"]) == sorted([names[120], names[91], names[90]]) and dry["kept"] == 2
    assert _daily_indices(es, prefix) == {*names.values(), *others}
    assert prune(es, retention)["deleted"] == dry["deleted"]
    assert _daily_indices(es, prefix) == kept
    assert prune(es, retention.replace(query_log_retention_days=0))["deleted"] == []  # 0: keep all


def test_the_writer_prunes_when_it_starts(settings, es, prefix, dated_log):
    names, others = dated_log
    querylog = QueryLog(settings.replace(query_log_prefix=prefix, query_log_retention_days=1), es).start()
    try:
        deadline = time.monotonic() + 10
        while names[89] in _daily_indices(es, prefix) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        querylog.close()
    assert _daily_indices(es, prefix) == {names[0], *others}


def test_querylog_prune_cli_dry_run(es, prefix, dated_log):
    names, _ = dated_log
    out = es_faq("querylog", "prune", "--dry-run", check=True,
                 env={"ES_FAQ_QUERY_LOG_PREFIX": prefix, "ES_FAQ_QUERY_LOG_RETENTION_DAYS": "100"})
    report = json.loads(out.stdout)
    assert report["dry_run"] and report["deleted"] == [names[120]] and report["retention_days"] == 100
    assert names[120] in _daily_indices(es, prefix)


def test_negative_retention_is_refused():
    with pytest.raises(ConfigError, match="query_log_retention_days"):
        load_settings({"ES_FAQ_QUERY_LOG_RETENTION_DAYS": "-1"})


def test_a_retention_past_year_one_is_refused_with_the_setting_s_name():
    with pytest.raises(ConfigError, match=r"query_log_retention_days=800000: .* from 1 to 36500"):
        load_settings({"ES_FAQ_QUERY_LOG_RETENTION_DAYS": "800000"})
    out = es_faq("querylog", "prune", "--dry-run", env={"ES_FAQ_QUERY_LOG_RETENTION_DAYS": "800000"})
    assert out.returncode == 2 and "query_log_retention_days=800000" in out.stderr and "Traceback" not in out.stderr


def test_the_writer_survives_an_unexpected_error_and_says_so(settings, es, prefix, searcher, demo_alias, monkeypatch,
                                                            caplog):
    """A fake, named as such: retention that raises what no real failure raises any more (the settings now
    refuse the retention that overflowed), to show that the writer thread logs it and goes on writing."""
    import es_faq.api.querylog as writer

    def broken_prune(*args, **kwargs):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(writer, "prune", broken_prune)
    querylog = QueryLog(settings.replace(query_log_prefix=prefix), es).start()
    try:
        result = searcher.search(DEMO_QUERY, 3, "bm25", index=demo_alias)
        querylog.log_search(uuid.uuid4().hex, result, None, None)
        assert querylog.flush(10)
        assert querylog._thread is not None and querylog._thread.is_alive()
    finally:
        querylog.close()
    assert "query log retention failed" in caplog.text
    es.indices.refresh(index=f"{prefix}-*")
    assert es.count(index=f"{prefix}-*")["count"] == 1



def test_querylog_bench_samples_the_log_for_a_person_to_label(es, app, prefix, tmp_path):
    """`es-faq querylog bench`: the live FAQs and a seeded random sample of the logged searches, one row a query with
    what its search did and any feedback (also feedback that came the next day) as hints; once labelled, the
    directory is a faq-bench `es-faq eval` reads, a mislabelled row is refused with its line, and a second run
    never overwrites a person's labels."""
    from es_faq.kb.faq import read_jsonl
    from es_faq.kb.log_bench import log_bench
    from es_faq.kb.querylog import feedback_document
    from tests.conftest import DEMO_FAQS, _drop_alias_family

    client = app.test_client()
    said = {}

    def search(query: str, request_id: str) -> None:
        response = client.post("/v1/search", json={"query": query}, headers={"X-Request-ID": request_id})
        assert response.status_code == 200
        body = response.get_json()
        said[query.strip()] = (body["decision"]["action"], [h["faq_id"] for h in body["hits"]][:3])

    search(DEMO_QUERY + " ", "lb-asked-again")  # the same query once normalised: one row, asked twice
    search(DEMO_QUERY, "lb-taken")
    assert client.post("/v1/feedback", json={"request_id": "lb-taken", "faq_id": "demo-031",
                                             "feedback": "helpful"}).status_code == 202
    for n, query in enumerate(("小橙花可以提前还款吗", "会员积分怎么用", "运费险怎么理赔")):
        search(query, f"lb-{n}")
    _logged(es, app, "lb-taken", lambda d: "query" in d and "feedback" in d)
    _logged(es, app, "lb-2", lambda d: "query" in d)
    # Feedback the day after its search: a document of its own in the next day's index, with the same id.
    tomorrow = f"{prefix}-{datetime.now(timezone.utc) + timedelta(days=1):%Y.%m.%d}"
    es.index(index=tomorrow, id="lb-1", document=feedback_document("lb-1", "demo-040", "unhelpful",
                                                                      datetime.now(timezone.utc)))
    es.indices.refresh(index=f"{prefix}-*")

    settings = app.config["ES_FAQ_SETTINGS"]
    out = tmp_path / "shop-log"
    report = log_bench(es, settings, out, since="1d", sample=100, seed=7, progress=False)
    assert report["searches_drawn"] == 5 and report["queries"] == 4 and report["with_feedback"] == 2
    assert report["needed_for_default_bounds"] == {"near_miss": 45, "no_match": 114}
    lines = (out / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    rows = {r["query"].strip(): r for r in map(json.loads, lines)}
    assert set(rows) == set(said)
    for query, row in rows.items():
        assert row["split"] == "to_label" and "kind" not in row and row["relevant"] == []
        assert (row["decision"], row["shown"]) == said[query]
    assert rows[DEMO_QUERY]["asked"] == 2 and rows["运费险怎么理赔"]["asked"] == 1
    assert (rows[DEMO_QUERY]["feedback"], rows[DEMO_QUERY]["feedback_faq_id"]) == ("helpful", "demo-031")
    assert (rows["会员积分怎么用"]["feedback"], rows["会员积分怎么用"]["feedback_faq_id"]) == ("unhelpful", "demo-040")
    assert "feedback" not in rows["运费险怎么理赔"]
    assert [f.id for f in read_jsonl(out / "faqs.jsonl")] == sorted(f.id for f in read_jsonl(DEMO_FAQS))
    again = log_bench(es, settings, tmp_path / "same-seed", since="1d", sample=100, seed=7, progress=False)
    assert again["queries"] == 4
    assert (tmp_path / "same-seed" / "queries.jsonl").read_text(encoding="utf-8").splitlines() == lines
    assert log_bench(es, settings, tmp_path / "two", since="1d", sample=2, progress=False)["searches_drawn"] == 2

    labels = {DEMO_QUERY: {"kind": "paraphrase", "relevant": ["demo-031"]},
              "小橙花可以提前还款吗": {"kind": "near_miss", "near_miss": [said["小橙花可以提前还款吗"][1][0]]},
              "会员积分怎么用": {"kind": "no_match"}, "运费险怎么理赔": {"kind": "no_match"}}
    labelled = [{**rows[q], **labels[q], "split": "dev"} for q in rows]
    (out / "queries.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in labelled))
    try:
        evaluated = es_faq("eval", "--bench", str(out), "--split", "dev", "--mode", "hybrid")
        assert evaluated.returncode == 0, evaluated.stderr
        assert json.loads(evaluated.stdout)["decision"]["queries"] == {"paraphrase": 1, "near_miss": 1, "no_match": 2}
        typo = [{**r, "kind": "paraphase"} if r["kind"] == "paraphrase" else r for r in labelled]
        (out / "queries.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in typo))
        refused = es_faq("eval", "--bench", str(out), "--split", "dev")
        line = next(n for n, r in enumerate(typo, start=1) if r["kind"] == "paraphase")
        assert refused.returncode != 0 and f"line {line}: kind 'paraphase' is not one of" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        _drop_alias_family(es, "bench-shop-log")

    before = (out / "queries.jsonl").read_bytes()
    rerun = es_faq("querylog", "bench", str(out), env={"ES_FAQ_INDEX_ALIAS": settings.index_alias,
                                                      "ES_FAQ_QUERY_LOG_PREFIX": prefix})
    assert rerun.returncode != 0 and "may hold labels a person made" in rerun.stderr
    assert "Traceback" not in rerun.stderr and (out / "queries.jsonl").read_bytes() == before
