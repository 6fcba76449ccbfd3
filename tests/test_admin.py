"""/v1/admin with the real node, model and MariaDB (scripts/mariadb): the token, the dictionaries, reindex.

Each app here has a dictionary index of its own, so adding a synonym never changes another test's
analysis; every response is checked against the OpenAPI document."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import schemathesis
from click.testing import CliRunner

from es_faq.api.app import create_app
from es_faq.api.openapi import spec
from es_faq.cli import cli
from es_faq.config.load import load_settings
from es_faq.errors import ConfigError
from es_faq.kb.index import lock_alias, versions
from es_faq.search.analyze import Analyzer
from es_faq.search.dictionary import DictionaryStore
from es_faq.search.pipeline import Searcher
from tests.test_sync import db, demo, wait_for  # noqa: F401  (db: a throwaway MariaDB database)

TOKEN = "test-admin-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUERY = "可以推迟还小橙花吗"  # tokens: 可以 推迟 还 小橙花 吗


@pytest.fixture
def dict_index(es):
    name = f"test-dict-{uuid.uuid4().hex[:8]}"
    yield name
    es.options(ignore_status=404).indices.delete(index=name)


@pytest.fixture
def jobs_index(es):
    """An admin jobs index of the test's own: its one-at-a-time lease is no other test's."""
    name = f"test-jobs-{uuid.uuid4().hex[:8]}"
    yield name
    es.options(ignore_status=404).indices.delete(index=name)


@pytest.fixture
def make_client(settings, es, embedder, dict_index, jobs_index):
    """A test client of an app with these setting changes, its analyzer following its own dictionary index."""
    def make(**changes):
        served = settings.replace(**{"query_log_enabled": False, "admin_token": TOKEN, "dict_index": dict_index,
                                     "jobs_index": jobs_index, "dict_check_interval_s": 0.2, **changes})
        analyzer = Analyzer(served, DictionaryStore(es, served))
        return create_app(served, Searcher(served, es, embedder, analyzer)).test_client()
    return make


@pytest.fixture(scope="module")
def api_schema(settings):
    return schemathesis.openapi.from_dict(spec(settings))


@pytest.fixture
def conforms(api_schema):
    """The response, checked against the operation's documented responses."""
    def check(method: str, path: str, response):
        api_schema[path][method].validate_response(response)
        return response
    return check


def _error(response) -> tuple[int, str, str]:
    error = response.get_json()["error"]
    return response.status_code, error["code"], error["message"]


def finished_job(client, conforms, job_id: str, timeout_s: float = 300) -> dict:
    """Poll GET /v1/admin/jobs/{job_id} until the job is done or failed; the job."""
    def finished():
        response = conforms("GET", "/v1/admin/jobs/{job_id}", client.get(f"/v1/admin/jobs/{job_id}", headers=AUTH))
        assert response.status_code == 200, response.get_json()
        job = response.get_json()
        return job["state"] in ("done", "failed") and job
    return wait_for(finished, timeout_s, f"admin job {job_id} to finish", every_s=0.25)


CALLS = [("GET", "/v1/admin/dictionary", "/v1/admin/dictionary", None),
         ("POST", "/v1/admin/dictionary", "/v1/admin/dictionary", {"kind": "word", "terms": ["小橙花"]}),
         ("DELETE", "/v1/admin/dictionary/{entry_id}", "/v1/admin/dictionary/word:小橙花", None),
         ("POST", "/v1/admin/dictionary-preview", "/v1/admin/dictionary-preview",
          {"action": "add", "kind": "word", "terms": ["小橙花"]}),
         ("POST", "/v1/admin/reindex", "/v1/admin/reindex", None),
         ("GET", "/v1/admin/sync", "/v1/admin/sync", None),
         ("GET", "/v1/admin/doctor", "/v1/admin/doctor", None),
         ("POST", "/v1/admin/doctor", "/v1/admin/doctor", None),
         ("GET", "/v1/admin/jobs/{job_id}", "/v1/admin/jobs/" + "0" * 32, None)]


def _call(client, method, url, body, headers=None):
    return client.open(url, method=method, json=body, headers=headers or {})


# --- the token ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, url, body", CALLS)
def test_without_a_configured_token_every_admin_endpoint_is_404(make_client, conforms, demo_alias, method, path,
                                                                url, body):
    client = make_client(admin_token="", index_alias=demo_alias)
    for headers in (None, AUTH, {"Authorization": "Bearer "}):
        response = conforms(method, path, _call(client, method, url, body, headers))
        status, code, message = _error(response)
        assert (status, code) == (404, "admin_disabled") and "ES_FAQ_ADMIN_TOKEN" in message


@pytest.mark.parametrize("method, path, url, body", CALLS)
def test_a_missing_or_wrong_token_is_401(make_client, conforms, demo_alias, caplog, method, path, url, body):
    client = make_client(index_alias=demo_alias)
    wrong = [None, {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKEN}x"},
             {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": f"Basic {TOKEN}"},
             {"Authorization": TOKEN}, {"Authorization": "Bearer 中文"}, {"X-Admin-Token": TOKEN}]
    with caplog.at_level(logging.DEBUG):
        for headers in wrong:
            response = conforms(method, path, _call(client, method, url, body, headers))
            assert _error(response)[:2] == (401, "unauthorized"), headers
            assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert TOKEN not in caplog.text  # never logged, right or wrong


def test_the_token_is_masked_refused_when_weak_and_never_in_repr():
    result = CliRunner().invoke(cli, ["config"], env={"ES_FAQ_ADMIN_TOKEN": TOKEN})
    assert result.exit_code == 0 and TOKEN not in result.output
    assert '"admin_token": "***"' in result.output
    settings = load_settings({"ES_FAQ_ADMIN_TOKEN": TOKEN})
    assert settings.admin_token == TOKEN and TOKEN not in repr(settings)
    for weak in ("short", f" {TOKEN}"):
        with pytest.raises(ConfigError, match="admin_token must be at least 16 characters"):
            load_settings({"ES_FAQ_ADMIN_TOKEN": weak})


# --- dictionaries ---------------------------------------------------------------------------------------
def _analysis(client, conforms) -> dict:
    response = conforms("POST", "/v1/search", client.post("/v1/search", json={"query": QUERY, "k": 3, "debug": True}))
    assert response.status_code == 200
    return response.get_json()


def test_an_added_synonym_is_listed_and_reaches_search_then_goes_away(make_client, conforms, demo_alias):
    client = make_client(index_alias=demo_alias)
    assert _analysis(client, conforms)["analysis"]["synonyms"] == {}

    added = conforms("POST", "/v1/admin/dictionary", client.post(
        "/v1/admin/dictionary", json={"kind": "synonym", "terms": [" 推迟", "延期", "推迟"]}, headers=AUTH))
    assert added.status_code == 201
    entry = added.get_json()
    assert entry["id"] == "synonym:延期|推迟" and entry["terms"] == ["推迟", "延期"]  # cleaned as the CLI cleans
    assert entry["effective_within_s"] == 0.2

    listed = conforms("GET", "/v1/admin/dictionary", client.get("/v1/admin/dictionary?kind=synonym", headers=AUTH))
    assert listed.get_json() == {"version": entry["version"], "entries": [
        {"id": "synonym:延期|推迟", "kind": "synonym", "terms": ["推迟", "延期"]}]}
    assert client.get("/v1/admin/dictionary?kind=word", headers=AUTH).get_json()["entries"] == []

    # The running app follows the version within dict_check_interval_s: no restart.
    body = wait_for(lambda: (b := _analysis(client, conforms))["analysis"]["dictionary_version"] == entry["version"]
                    and b, 10, "the new dictionary version in search", every_s=0.1)
    assert body["analysis"]["synonyms"] == {"推迟": ["延期"]}
    assert "延期" in str(body["es_request"])  # the expansion clause went to Elasticsearch

    removed = conforms("DELETE", "/v1/admin/dictionary/{entry_id}",
                       client.delete("/v1/admin/dictionary/synonym:延期|推迟", headers=AUTH))
    assert removed.status_code == 200 and removed.get_json()["version"] == entry["version"] + 1
    body = wait_for(lambda: (b := _analysis(client, conforms))["analysis"]["dictionary_version"] > entry["version"]
                    and b, 10, "the removal in search", every_s=0.1)
    assert body["analysis"]["synonyms"] == {}

    again = conforms("DELETE", "/v1/admin/dictionary/{entry_id}",
                     client.delete("/v1/admin/dictionary/synonym:延期|推迟", headers=AUTH))
    assert _error(again)[:2] == (404, "entry_not_found")
    for bad in ("nonsense", "phrase:推迟", "word:", "word:%20"):
        response = conforms("DELETE", "/v1/admin/dictionary/{entry_id}",
                            client.delete(f"/v1/admin/dictionary/{bad}", headers=AUTH))
        assert _error(response)[:2] == (404, "entry_not_found"), bad


def test_a_word_with_a_slash_round_trips(make_client, conforms, demo_alias):
    client = make_client(index_alias=demo_alias)
    added = client.post("/v1/admin/dictionary", json={"kind": "word", "terms": ["A/B测试"]}, headers=AUTH)
    assert added.status_code == 201 and added.get_json()["id"] == "word:A/B测试"
    removed = conforms("DELETE", "/v1/admin/dictionary/{entry_id}",
                       client.delete("/v1/admin/dictionary/word:A%2FB%E6%B5%8B%E8%AF%95", headers=AUTH))
    assert removed.status_code == 200
    assert client.get("/v1/admin/dictionary", headers=AUTH).get_json()["entries"] == []


@pytest.mark.parametrize("body, says", [
    ({"kind": "synonym", "terms": ["推迟"]}, "a synonym group needs at least two different terms"),
    ({"kind": "synonym", "terms": ["推迟", "延 期"]}, "synonym terms are single words"),
    ({"kind": "rewrite", "terms": ["迟", "推迟"]}, "is one character"),
    ({"kind": "rewrite", "terms": ["推迟还", "推迟还款"]}, "would apply again to its own output"),
    ({"kind": "word", "terms": ["a b"]}, "contains whitespace"),
    ({"kind": "word", "terms": ["x" * 33]}, "longer than 32 characters"),
    ({"kind": "filler", "terms": ["  "]}, "filler is empty"),
    ({"kind": "phrase", "terms": ["推迟"]}, "unknown dictionary kind 'phrase'"),
    ({"kind": "word", "terms": []}, "terms must be an array of 1 to 100 strings"),
    ({"kind": "word", "terms": "推迟"}, "terms must be an array"),
    ({"kind": "word", "terms": [5]}, "each term must be a string"),
    ({"kind": "word"}, "terms is required"),
    ({"kind": "word", "terms": ["推迟"], "version": 3}, "unknown field 'version'"),
    (["word", "推迟"], "JSON object"),
])
def test_a_bad_entry_is_400_with_the_reason(make_client, conforms, demo_alias, body, says):
    client = make_client(index_alias=demo_alias)
    response = conforms("POST", "/v1/admin/dictionary", client.post("/v1/admin/dictionary", json=body, headers=AUTH))
    status, code, message = _error(response)
    assert (status, code) == (400, "invalid_input") and says in message, message


def test_messages_are_those_of_es_faq_dict_add(make_client, demo_alias, dict_index):
    client = make_client(index_alias=demo_alias)
    api = client.post("/v1/admin/dictionary", json={"kind": "rewrite", "terms": ["迟", "推迟"]}, headers=AUTH)
    result = CliRunner().invoke(cli, ["dict", "add", "rewrite", "迟", "推迟"], env={"ES_FAQ_DICT_INDEX": dict_index})
    assert result.exit_code == 2
    assert f"rejected: {api.get_json()['error']['message']}" in result.output


def test_a_body_that_is_not_json_is_refused_like_search(make_client, conforms, demo_alias):
    client = make_client(index_alias=demo_alias)
    for kwargs, expected in [({"data": "kind=word"}, (415, "unsupported_media_type")),
                             ({"data": b"{", "content_type": "application/json"}, (400, "invalid_json"))]:
        response = conforms("POST", "/v1/admin/dictionary", client.post("/v1/admin/dictionary", headers=AUTH,
                                                                         **kwargs))
        assert _error(response)[:2] == expected


# --- reindex and sync state -----------------------------------------------------------------------------
def test_reindex_without_mysql_is_400(make_client, conforms, demo_alias):
    client = make_client(index_alias=demo_alias, mysql_url="")
    response = conforms("POST", "/v1/admin/reindex", client.post("/v1/admin/reindex", headers=AUTH))
    status, code, message = _error(response)
    assert (status, code) == (400, "sync_not_configured") and "ES_FAQ_MYSQL_URL is not set" in message
    state = conforms("GET", "/v1/admin/sync", client.get("/v1/admin/sync", headers=AUTH)).get_json()
    assert state["source"] is None and state["index"] and state["reindex"] is None


def test_reindex_runs_a_full_sync_from_mariadb(make_client, conforms, db, alias, es):  # noqa: F811
    db.add(demo(6))
    client = make_client(index_alias=alias, mysql_url=db.url)
    before = conforms("GET", "/v1/admin/sync", client.get("/v1/admin/sync", headers=AUTH)).get_json()
    assert (before["alias"], before["index"], before["watermark"], before["lock"]) == (alias, None, None, None)
    assert "***@" in before["source"] and db.url.split("@")[0].split(":")[-1] not in before["source"]

    started = conforms("POST", "/v1/admin/reindex", client.post("/v1/admin/reindex", headers=AUTH))
    assert started.status_code == 202
    job = started.get_json()
    assert job["status"] == "started" and job["command"] == ["es-faq", "sync", "full", "--no-progress",
                                                             "--alias", alias]
    busy = conforms("POST", "/v1/admin/reindex", client.post("/v1/admin/reindex", headers=AUTH))
    assert _error(busy)[:2] == (409, "sync_busy")  # this server's reindex is still running

    def finished():
        state = conforms("GET", "/v1/admin/sync", client.get("/v1/admin/sync", headers=AUTH)).get_json()
        return not state["reindex"]["running"] and state
    state = wait_for(finished, 300, "the reindex to finish", every_s=0.5)
    log = Path(job["log"]).read_text(encoding="utf-8", errors="replace")
    assert state["reindex"]["exit_status"] == 0, log[-3000:]
    assert '"upserted": 6' in log
    assert state["index"] and state["index"].startswith(f"{alias}-") and state["lock"] is None
    assert state["watermark"]["id"] == 6
    assert es.count(index=alias)["count"] == 6
    hits = client.post("/v1/search", json={"query": "忘记支付密码怎么办", "k": 1}).get_json()["hits"]
    assert hits[0]["faq_id"] == "1"


def test_reindex_is_409_while_another_sync_holds_the_lock(make_client, conforms, db, alias, es, settings):  # noqa: F811
    served = settings.replace(mysql_url=db.url)
    client = make_client(index_alias=alias, mysql_url=db.url)
    with lock_alias(es, served, alias, "incremental")[0]:
        response = conforms("POST", "/v1/admin/reindex", client.post("/v1/admin/reindex", headers=AUTH))
        status, code, message = _error(response)
        assert (status, code) == (409, "sync_busy")
        assert re.search(rf"another writer \(incremental, pid \d+ on .+\) holds the lock on {alias}", message)
        lock = conforms("GET", "/v1/admin/sync", client.get("/v1/admin/sync", headers=AUTH)).get_json()["lock"]
        assert lock["command"] == "incremental"
        assert datetime.fromisoformat(lock["expires_at"]) > datetime.now(timezone.utc)
    assert client.get("/v1/admin/sync", headers=AUTH).get_json()["lock"] is None


def test_parallel_reindex_requests_start_exactly_one_sync(make_client, conforms, db, alias, es):  # noqa: F811
    db.add(demo(4))
    app = make_client(index_alias=alias, mysql_url=db.url).application
    start = threading.Barrier(6)

    def post(_):
        client = app.test_client()
        start.wait()
        return client.post("/v1/admin/reindex", headers=AUTH)
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(post, range(6)))
    for response in responses:
        conforms("POST", "/v1/admin/reindex", response)
    assert sorted(r.status_code for r in responses) == [202, 409, 409, 409, 409, 409]
    assert {_error(r)[1] for r in responses if r.status_code == 409} == {"sync_busy"}

    client = app.test_client()

    def finished():
        state = client.get("/v1/admin/sync", headers=AUTH).get_json()
        return not state["reindex"]["running"] and state
    state = wait_for(finished, 300, "the reindex to finish", every_s=0.5)
    log = Path(state["reindex"]["log"]).read_text(encoding="utf-8", errors="replace")
    assert state["reindex"]["exit_status"] == 0, log[-3000:]  # it adopted the lease the API took for it
    assert len(versions(es, alias)) == 1 and state["lock"] is None
