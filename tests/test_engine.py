"""`es-faq engine` against the node scripts/test started."""

import json

import pytest

from es_faq.engine import local as engine
from es_faq.engine import provision
from es_faq.errors import ProvisionError
from tests.test_cli import es_faq


@pytest.mark.requires_es
def test_status_reports_url_version_and_health(settings):
    status = json.loads(es_faq("engine", "status", check=True).stdout)
    assert status["url"] == settings.es_url
    assert status["version"].startswith("9.")
    assert status["health"] in {"green", "yellow"}


@pytest.mark.requires_es
def test_up_is_idempotent(settings):
    if engine._running_pid(provision.EngineLayout(settings.engine_path, settings.engine_version)) is None:
        pytest.skip("the node under test was not started by `es-faq engine up` on this machine")
    out = es_faq("engine", "up", check=True)
    assert "already running" in out.stderr
    assert json.loads(out.stdout)["health"] in {"green", "yellow"}


def test_engine_refuses_remote_urls(settings):
    with pytest.raises(ProvisionError, match="only manages a local node"):
        provision.install(settings.replace(es_url="https://es.example.com:9243"))
