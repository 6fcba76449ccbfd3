"""A local 3-node cluster (`es-faq engine up --nodes 3`): the client takes every node, and a node
killed under search load fails no search (bench/drills/node_failover.py is the longer drill).

The cluster is this module's own (ES_FAQ_TEST_CLUSTER_ES_URL, three loopback URLs, and
ES_FAQ_TEST_CLUSTER_ENGINE_DIR), started once and stopped at the end: the suite's node is never
touched. Booting three nodes takes a minute or two on 2 cores; the kill test about one more."""

from __future__ import annotations

import importlib.util
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from es_faq.config.load import load_settings
from es_faq.config.settings import REPO_ROOT
from es_faq.engine import local as engine
from es_faq.engine import provision
from es_faq.engine.client import make_client
from es_faq.errors import ConfigError, ProvisionError

CLUSTER_ES_URL = os.environ.get("ES_FAQ_TEST_CLUSTER_ES_URL",
                                "http://127.0.0.1:9241,http://127.0.0.1:9242,http://127.0.0.1:9243")
CLUSTER_ENGINE_DIR = Path(os.environ.get("ES_FAQ_TEST_CLUSTER_ENGINE_DIR") or (
    "/var/lib/es-faq/cluster-engine" if os.geteuid() == 0 else Path.home() / ".cache/es-faq/cluster-engine"))
ALIAS = "cluster-demo"


def _drill():
    """bench/drills/node_failover.py, whose load and health watch this test runs for a shorter time."""
    spec = importlib.util.spec_from_file_location("node_failover", REPO_ROOT / "bench" / "drills" / "node_failover.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_es_url_lists_nodes(settings):
    many = settings.replace(es_url=" http://127.0.0.1:9221, http://127.0.0.1:9222 ,http://127.0.0.1:9223")
    assert many.es_urls == ["http://127.0.0.1:9221", "http://127.0.0.1:9222", "http://127.0.0.1:9223"]
    assert len(make_client(many).transport.node_pool.all()) == 3


@pytest.mark.requires_es
def test_a_dead_node_in_the_list_costs_no_request(settings, es):
    # Port 9 refuses connections: each request sent there is retried on the live node.
    both = settings.replace(es_url=f"http://127.0.0.1:9,{settings.es_url}", engine_breaker_failures=0)
    client = make_client(both)
    for _ in range(10):
        assert client.cluster.health()["status"] in {"green", "yellow"}


@pytest.mark.parametrize("value, word", [
    ("http://127.0.0.1:9200,", None),
    ("http://127.0.0.1:9200,127.0.0.1:9201", "127.0.0.1:9201"),
    ("http://u:s3cret@127.0.0.1:9200,ftp://u:s3cret@h:1", "node 2 of 2"),
    (" , ", "es_url is empty"),
])
def test_bad_es_url_lists_are_refused_clearly(value, word):
    if word is None:  # a trailing comma is harmless
        assert load_settings({"ES_FAQ_ES_URL": value}).es_urls == ["http://127.0.0.1:9200"]
        return
    with pytest.raises(ConfigError) as info:
        load_settings({"ES_FAQ_ES_URL": value})
    assert word in info.value.message and "s3cret" not in info.value.message


def test_node_ports_come_from_the_urls(settings, tmp_path):
    one = settings.replace(es_url="http://127.0.0.1:9221", engine_dir=tmp_path)
    assert provision.local_ports(one, 3) == [9221, 9222, 9223]
    with pytest.raises(ProvisionError, match="lists 2 URLs for 3 nodes"):
        provision.local_ports(settings.replace(es_url="http://127.0.0.1:9221,http://127.0.0.1:9222"), 3)
    with pytest.raises(ProvisionError, match="must all differ"):
        provision.local_ports(settings.replace(es_url="http://127.0.0.1:9221,http://127.0.0.1:9321"), 2)


@pytest.fixture(scope="module")
def cluster():
    """Three nodes of this module's own, 512 MB heap each; stopped afterwards whatever happens."""
    own = load_settings().replace(es_url=CLUSTER_ES_URL, engine_dir=CLUSTER_ENGINE_DIR, engine_heap="512m",
                                  search_timeout_s=10.0)
    try:
        engine.up(own, echo=lambda message: None)
        yield own
    finally:
        engine.down(own)


@pytest.mark.requires_es  # an installed engine, which a reachable node stands for
def test_three_nodes_form_one_cluster(cluster):
    status = engine.status(cluster)
    assert status["nodes"] == 3 and status["health"] in {"green", "yellow"}
    assert [n["name"] for n in status["cluster"]] == ["es-faq-local-1", "es-faq-local-2", "es-faq-local-3"]
    assert all(n["local_pid"] for n in status["cluster"])
    # The first boot's bootstrap list is written only while a node has no data: not by a later `up`.
    provision.install(cluster)
    config = (provision.node_layout(cluster, 2).config / "elasticsearch.yml").read_text()
    assert "discovery.seed_hosts" in config and "cluster.initial_master_nodes" not in config
    # A hung node leaves the cluster in seconds, not half a minute (test_a_hung_node_fails_no_search_after...).
    assert "cluster.fault_detection.follower_check.timeout: 2s" in config


@pytest.mark.requires_es
def test_node_killed_under_load_fails_no_search(cluster):
    drill = _drill()
    bodies = drill.prepare(cluster, shards=3, replicas=1, alias=ALIAS)
    client = make_client(cluster)
    index = next(iter(client.indices.get_alias(name=ALIAS).body))
    assert client.indices.get_settings(index=index).body[index]["settings"]["index"]["number_of_replicas"] == "1"
    load = drill.SearchLoad(cluster, ALIAS, bodies, clients=3).start()
    watch = drill.HealthWatch(cluster).start()
    try:
        time.sleep(3)
        number = drill.node_number(cluster, "master")
        killed = time.monotonic()
        engine.stop_node(provision.node_layout(cluster, number), kill=True)
        time.sleep(8)
        down = load.phase(killed, time.monotonic())
        engine.up(cluster, echo=lambda message: None)
        drill.wait_green(cluster, timeout_s=180)
        whole = load.phase(killed, time.monotonic())
    finally:
        load.stop()
        watch.stop()
    assert load.phase(0, killed)["searches"] > 0 and down["searches"] > 0
    assert down["failed"] == 0 and whole["failed"] == 0, whole["errors"]
    assert watch.first("yellow", killed) is not None  # the cluster saw the node go
    assert engine.status(cluster)["health"] == "green" and engine.status(cluster)["nodes"] == 3


def _loaded(cluster, settings, clients: int = 3):
    drill = _drill()
    bodies = drill.prepare(cluster, shards=3, replicas=1, alias=ALIAS)
    return drill, drill.SearchLoad(settings, ALIAS, bodies, clients=clients).start()


@pytest.mark.requires_es
def test_a_hung_node_fails_no_search_after_the_first_timeout(cluster):
    # Issue 23: one breaker for the whole list made one SIGSTOPped node fail half the searches. Now
    # the node pool leaves the hung node out after its first timeout and the search goes to another.
    own = cluster.replace(search_timeout_s=3.0)
    drill, load = _loaded(cluster, own)
    number = 3 if drill.node_number(cluster, "master") != 3 else 2
    pid = engine._running_pid(provision.node_layout(cluster, number))
    assert pid
    try:
        time.sleep(3)
        stopped = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(15)
        hung = load.phase(stopped, time.monotonic())
    finally:
        os.kill(pid, signal.SIGCONT)
        load.stop()
    first = hung["first_failure_s"]
    after = load.phase(stopped + (first or 0) + own.search_timeout_s, stopped + 15)
    print({"hung": hung, "after_first_timeout": after})
    assert hung["searches"] > 0 and after["searches"] > 0
    assert after["failed"] == 0, after["errors"]
    drill.wait_green(cluster, timeout_s=180)


@pytest.mark.requires_es
def test_one_seed_url_with_sniffing_survives_the_seed_killed(cluster):
    seed = cluster.replace(es_url=cluster.es_urls[0], es_sniff=True)
    drill, load = _loaded(cluster, seed)
    assert len(load.client.transport.node_pool.all()) == 3  # found by sniffing on start
    try:
        time.sleep(3)
        killed = time.monotonic()
        engine.stop_node(provision.node_layout(cluster, 1), kill=True)
        time.sleep(8)
        down = load.phase(killed, time.monotonic())
    finally:
        load.stop()
        engine.up(cluster, echo=lambda message: None)
        drill.wait_green(cluster, timeout_s=180)
    print({"seed_down": down})
    assert down["searches"] > 0 and down["failed"] == 0, down["errors"]


@pytest.mark.requires_es
def test_a_rolling_restart_of_one_node_fails_no_search(cluster):
    # The short form of bench/drills/rolling_restart.py: `es-faq engine restart --rolling --node 2`
    # under 8 clients; the drill restarts every node.
    drill, load = _loaded(cluster, cluster, clients=8)
    node_tmp = provision.node_layout(cluster, 2).tmp
    booted = set(node_tmp.glob(engine.LAUNCHER_LEFTOVERS))
    system_tmp = set(Path(tempfile.gettempdir()).glob(engine.LAUNCHER_LEFTOVERS))
    try:
        time.sleep(3)
        began = time.monotonic()
        report = engine.rolling_restart(cluster, echo=lambda message: None, only=2)
        rolling = load.phase(began, time.monotonic())
    finally:
        load.stop()
    print({"restart": report, "rolling": rolling})
    assert report["health"] == "green" and [n["node"] for n in report["nodes"]] == ["es-faq-local-2"]
    assert rolling["searches"] > 0 and rolling["failed"] == 0, rolling["errors"]
    # The launcher's leftover folders stay in the node's own temporary folder, and a start clears the last one's.
    assert booted and not booted & set(node_tmp.glob(engine.LAUNCHER_LEFTOVERS))
    assert set(Path(tempfile.gettempdir()).glob(engine.LAUNCHER_LEFTOVERS)) <= system_tmp
