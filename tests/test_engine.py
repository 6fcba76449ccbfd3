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


@pytest.mark.requires_es
def test_up_refuses_a_port_other_than_the_running_nodes_and_leaves_its_config(settings):
    """A running node and ES_FAQ_ES_URL naming another port: `up` used to rewrite the node's elasticsearch.yml to
    the new port under it (its next start would move) and then wait minutes for a node that never answered."""
    import re

    layout = provision.EngineLayout(settings.engine_path, settings.engine_version)
    if engine._running_pid(layout) is None:
        pytest.skip("the node under test was not started by `es-faq engine up` on this machine")
    config = layout.config / "elasticsearch.yml"
    before = config.read_text()
    port = int(re.search(r"^http\.port: (\d+)$", before, re.M).group(1))
    try:
        with pytest.raises(ProvisionError, match=rf"already runs at http://127.0.0.1:{port} .* not at "
                                                  rf"the http://127.0.0.1:{port + 7} ES_FAQ_ES_URL names"):
            engine.up(settings.replace(es_url=f"http://127.0.0.1:{port + 7}", engine_start_timeout_s=5),
                      echo=lambda _: None)
        assert config.read_text() == before
    finally:
        config.write_text(before)  # a regression must not move the suite's node at its next start


def test_engine_refuses_remote_urls(settings):
    with pytest.raises(ProvisionError, match="only manages a local node"):
        provision.install(settings.replace(es_url="https://es.example.com:9243"))
