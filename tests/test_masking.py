"""Credentials never leave the process: every URL es-faq shows (API answers, CLI output, `es-faq
config`) goes through mask_url (es_faq/config/urls.py). Against the real node (it runs without
security, so a URL with credentials still reaches it) and, for the sync, the real MariaDB's port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlparse

import pytest

from es_faq.api.app import create_app
from es_faq.config.urls import mask_url
from es_faq.search.pipeline import Searcher

SECRET = "S3cr3t-pw"


@pytest.mark.parametrize("url, shown", [
    ("http://elastic:S3cr3t-pw@es.example.com:9210", "http://elastic:***@es.example.com:9210"),
    ("mysql://:S3cr3t-pw@db.example.com/faq", "mysql://:***@db.example.com/faq"),  # no user name
    ("mysql://faq:S3cr@t@-pw@db.example.com:3306/faq", "mysql://faq:***@db.example.com:3306/faq"),  # '@' in it
    ("mysql://faq:S3:cr3t:pw@db.example.com/faq", "mysql://faq:***@db.example.com/faq"),  # ':' in it
    ("mysql://faq:S3/cr3t?pw@db.example.com/faq", "mysql://faq:***@db.example.com/faq"),  # '/' and '?': urllib misreads
    ("http://elastic:S3cr3t-pw@[::1]:9200", "http://elastic:***@[::1]:9200"),  # IPv6 host
    ("http://elastic:S3cr3t-pw@[fe80::1%25eth0]:9200/", "http://elastic:***@[fe80::1%25eth0]:9200/"),
    ("http://[::1]:9200", "http://[::1]:9200"),
    ("http://elastic:@127.0.0.1:9200", "http://elastic:***@127.0.0.1:9200"),
    ("http://elastic@127.0.0.1:9200", "http://elastic@127.0.0.1:9200"),  # a user name alone is no secret
    ("mysql://faq@db/faq?password=S3cr3t-pw&ssl_ca=/etc/ca.pem", "mysql://faq@db/faq?password=***&ssl_ca=/etc/ca.pem"),
    ("elastic:S3cr3t-pw@127.0.0.1:9200", "elastic:***@127.0.0.1:9200"),  # no scheme
    ("", ""),
])
def test_mask_url_hides_every_form_of_password(url, shown):
    assert mask_url(url) == shown


def test_settings_repr_shows_no_secret(settings):
    # A Settings lands in tracebacks and in pytest's reports of a failed test.
    secret = settings.replace(es_url=f"http://elastic:{SECRET}@[::1]:9200", mysql_url=f"mysql://:{SECRET}@db/faq",
                              es_password=SECRET, es_api_key=SECRET, admin_token=SECRET * 2)
    assert SECRET not in repr(secret) and "es_url='http://elastic:***@[::1]:9200'" in repr(secret)


def _with_credentials(url: str, port: int | None = None, host: str = "127.0.0.1") -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://elastic:{SECRET}@{host}:{port or parsed.port}"


def test_api_answers_never_carry_the_password(settings, embedder, analyzer, demo_alias):
    token = "test-admin-token-0123456789"
    for es_url, status in [(_with_credentials(settings.es_urls[0]), 200),
                           (_with_credentials(settings.es_urls[0], port=9), 503),
                           (_with_credentials(settings.es_urls[0], port=9, host="[::1]"), 503)]:
        served = settings.replace(es_url=es_url, index_alias=demo_alias, query_log_enabled=False, admin_token=token)
        client = create_app(served, Searcher(served, embedder=embedder, analyzer=analyzer)).test_client()
        ready = client.get("/readyz")
        assert ready.status_code == status
        assert "elastic:***@" in ready.get_data(as_text=True)
        answers = [ready, client.post("/v1/search", json={"query": "还款"}), client.get("/v1/faqs/demo-001"),
                   client.get("/v1/admin/sync", headers={"Authorization": f"Bearer {token}"})]
        for response in answers:
            assert SECRET not in response.get_data(as_text=True), response.get_data(as_text=True)
        if status == 503:
            assert all(r.status_code == 503 for r in answers)


def es_faq(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "es_faq", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_cli_output_never_carries_the_password(settings, alias, demo_alias):
    dead_es = {"ES_FAQ_ES_URL": _with_credentials(settings.es_urls[0], port=9)}
    dead_mysql = {"ES_FAQ_MYSQL_URL": f"mysql://:{SECRET}@127.0.0.1:1/faq", "ES_FAQ_INDEX_ALIAS": alias}
    runs = {
        "search": es_faq("search", "还款", env=dead_es),
        "sync check, engine down": es_faq("sync", "check", env={**dead_es, **dead_mysql}),
        "sync check, mysql down": es_faq("sync", "check", env={**dead_mysql, "ES_FAQ_INDEX_ALIAS": demo_alias}),
        "sync full, mysql down": es_faq("sync", "full", "--no-progress", env=dead_mysql),
        "engine status": es_faq("engine", "status", env={"ES_FAQ_ES_URL": _with_credentials(settings.es_urls[0])}),
        "config": es_faq("config", env={**dead_es, **dead_mysql, "ES_FAQ_ES_PASSWORD": SECRET}),
    }
    for name, run in runs.items():
        assert SECRET not in run.stdout + run.stderr, (name, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr, (name, run.stderr)
    assert runs["search"].returncode == 3 and "elastic:***@127.0.0.1:9" in runs["search"].stderr
    assert runs["sync check, engine down"].returncode == 3
    for name in ("sync check, mysql down", "sync full, mysql down"):
        assert runs[name].returncode == 8 and "MySQL at mysql://:***@127.0.0.1:1/faq" in runs[name].stderr
    assert json.loads(runs["engine status"].stdout)["url"].startswith("http://elastic:***@")
    shown = json.loads(runs["config"].stdout)
    assert (shown["es_url"], shown["mysql_url"], shown["es_password"]) == (
        "http://elastic:***@127.0.0.1:9", "mysql://:***@127.0.0.1:1/faq", "***")


@pytest.mark.parametrize("es_url", [f"http://elastic:{SECRET}@127.0.0.1:notaport", "http://[::1:9250",
                                    f"http://elastic:{SECRET}@[::1:9250", f"http://elastic:{SECRET}@127.0.0.1"])
def test_an_unparsable_es_url_is_refused_without_showing_it(es_url):
    # The client's own parser raised `Could not parse URL 'http://elastic:S3cr3t-pw@...'` in a traceback.
    for args in (("index", "versions"), ("config",)):
        run = es_faq(*args, env={"ES_FAQ_ES_URL": es_url})
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert "es_url (ES_FAQ_ES_URL)" in run.stderr and "Traceback" not in run.stderr
        assert SECRET not in run.stdout + run.stderr and es_url not in run.stdout + run.stderr


def test_every_node_of_a_url_list_is_shown_masked(settings, embedder, analyzer, demo_alias):
    # mask_url took everything before the last '@' as one user info, dropping the first node.
    two = f"http://elastic:{SECRET}@127.0.0.1:9,http://elastic:{SECRET}@[::1]:9"
    assert mask_url(two) == "http://elastic:***@127.0.0.1:9,http://elastic:***@[::1]:9"
    assert mask_url("http://elastic:pa,ss@127.0.0.1:9") == "http://elastic:***@127.0.0.1:9"  # a comma in a password
    served = settings.replace(es_url=two, index_alias=demo_alias, query_log_enabled=False)
    assert served.es_urls == [f"http://elastic:{SECRET}@127.0.0.1:9", f"http://elastic:{SECRET}@[::1]:9"]
    ready = create_app(served, Searcher(served, embedder=embedder, analyzer=analyzer)).test_client().get("/readyz")
    text = ready.get_data(as_text=True)
    assert "http://elastic:***@127.0.0.1:9,http://elastic:***@[::1]:9" in text and SECRET not in text
