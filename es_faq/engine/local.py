"""The local Elasticsearch for development and tests, running: one node, or a cluster of several on
loopback (`es-faq engine up --nodes 3`), each with its own ports, data and heap. Nodes are started as
daemons and waited for (`up`), stopped by their pid (`down`), or restarted one at a time
(`rolling_restart`); their files, ports and JDK are provision.py's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from ..config.settings import Settings
from ..config.urls import mask_url
from ..errors import EngineUnavailable, ProvisionError
from .client import cluster_health, make_client
from .provision import (
    TRANSPORT_OFFSET,
    EngineLayout,
    configured_port,
    find_java,
    install,
    installed_layouts,
    local_ports,
    node_layout,
    node_layouts,
)


def _running_pid(layout: EngineLayout) -> int | None:
    try:
        pid = int(layout.pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _check_running_ports(settings: Settings, nodes: int | None) -> None:
    """Refuse before any config is rewritten when a running node listens on another port than ES_FAQ_ES_URL names:
    `up` would rewrite its elasticsearch.yml under it and then wait for a node that never answers there."""
    count = nodes or len(settings.es_urls)
    for layout, port in zip(node_layouts(settings, count), local_ports(settings, count), strict=True):
        pid, running = _running_pid(layout), configured_port(layout)
        if pid and running is not None and running != port:
            raise ProvisionError(
                f"engine node {layout.name} already runs at {_node_url(running)} (pid {pid}), not at the "
                f"{_node_url(port)} ES_FAQ_ES_URL names: set ES_FAQ_ES_URL={_node_url(running)} to use it, or stop it "
                f"first (`es-faq engine down`) and run `es-faq engine up` again; the nodes under "
                f"{settings.engine_path} are one set (ES_FAQ_ENGINE_DIR gives another set its own folder)")


def _node_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


LAUNCHER_LEFTOVERS = "final-flags*"


def _clear_launcher_leftovers(layout: EngineLayout) -> None:
    """The folders an earlier start's launcher left in the node's temporary folder (nothing uses them after it)."""
    for leftover in layout.tmp.glob(LAUNCHER_LEFTOVERS):
        shutil.rmtree(leftover, ignore_errors=True)


def _start(settings: Settings, layout: EngineLayout, url: str, echo) -> None:
    """Start one node as a daemon; ProvisionError if its port is taken or it fails to boot."""
    try:
        single = settings.replace(es_url=url)
        cluster_health(make_client(single, timeout_s=2), single, timeout_s=2)
        raise ProvisionError(f"something else already answers at {url}; stop it or choose another port in "
                             "ES_FAQ_ES_URL")
    except EngineUnavailable:
        pass
    _clear_launcher_leftovers(layout)
    # The launcher's own JVM (CLI_JAVA_OPTS) runs a probe of the final JVM flags in a fresh temporary folder,
    # where the probe writes a gc.log, and leaves the folder: two a start in the system's temporary folder
    # (600 of them in /tmp after a day of tests). Its temporary folder is the node's, cleared at the next start.
    cli_options = f"-Djava.io.tmpdir={layout.tmp} {os.environ.get('CLI_JAVA_OPTS', '')}".strip()
    env = dict(os.environ, ES_JAVA_HOME=str(find_java(settings)), ES_PATH_CONF=str(layout.config),
               ES_TMPDIR=str(layout.tmp), CLI_JAVA_OPTS=cli_options,
               ES_JAVA_OPTS=f"-Xms{settings.engine_heap} -Xmx{settings.engine_heap}")
    env.pop("JAVA_HOME", None)
    user = settings.engine_user if os.geteuid() == 0 else None
    echo(f"starting Elasticsearch {settings.engine_version} node {layout.name} at {url} (logs: {layout.logs})")
    proc = subprocess.run([str(layout.dist / "bin" / "elasticsearch"), "-d", "-p", str(layout.pidfile)],
                          env=env, user=user, cwd=layout.home, capture_output=True, text=True,
                          # Its own session: a signal to the starter's process group (Ctrl-C, a
                          # timeout) must not reach the daemon.
                          start_new_session=True)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if "BindException" in output:
            raise ProvisionError(f"Elasticsearch could not bind {url} or its transport port (+{TRANSPORT_OFFSET}): "
                                 "the port is in use. Choose other ports in ES_FAQ_ES_URL.")
        raise ProvisionError(f"Elasticsearch failed to start (log: {layout.logs}):\n{output[-2000:]}")


def up(settings: Settings, echo=print, nodes: int | None = None) -> dict:
    """Install if needed, start each node that does not run, and wait until the cluster has them all
    and every primary is assigned. Running nodes are left alone: after a node dies, `up` restarts it."""
    _check_running_ports(settings, nodes)
    layouts = install(settings, nodes)
    ports = local_ports(settings, len(layouts))
    if len(settings.es_urls) != len(layouts):
        echo(f"set ES_FAQ_ES_URL={','.join(_node_url(p) for p in ports)} so that clients use every node")
    starting = []
    for layout, port in zip(layouts, ports, strict=True):
        pid = _running_pid(layout)
        if pid:
            echo(f"engine node {layout.name} already running (pid {pid})")
        else:
            starting.append((layout, port))
    # Together: a cluster's first node waits for the others to form it, and each boot is tens of seconds.
    with ThreadPoolExecutor(max_workers=max(1, len(starting))) as pool:
        for future in [pool.submit(_start, settings, layout, _node_url(port), echo) for layout, port in starting]:
            future.result()
    client = make_client(settings.replace(es_url=",".join(_node_url(p) for p in ports)))
    deadline = time.monotonic() + settings.engine_start_timeout_s
    while True:
        try:
            # Yellow: every primary is assigned; indices with replicas stay yellow on one node.
            health = cluster_health(client, settings, wait_for_status="yellow", timeout_s=5,
                                    wait_for_nodes=len(layouts))
            if health.get("status") in ("green", "yellow") and not health.get("timed_out"):
                return status(settings)
        except EngineUnavailable:
            pass
        dead = [layout for layout in layouts if not _running_pid(layout)]
        if dead or time.monotonic() > deadline:
            layout = (dead or layouts)[0]
            raise ProvisionError(f"Elasticsearch did not become ready; see {layout.logs}/es-faq-local.log\n"
                                 + _log_tail(layout))
        time.sleep(1)


def _log_tail(layout: EngineLayout, lines: int = 20) -> str:
    log = layout.logs / "es-faq-local.log"
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop_node(layout: EngineLayout, timeout_s: float = 60, kill: bool = False) -> bool:
    """Stop one node by its pid (SIGTERM, SIGKILL after timeout_s, or at once with `kill`); False if not running."""
    pid = _running_pid(layout)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _running_pid(layout) is None:
            break
        time.sleep(0.5)
    else:
        os.kill(pid, signal.SIGKILL)
    layout.pidfile.unlink(missing_ok=True)
    return True


def rolling_restart(settings: Settings, echo=print, drain: bool = False, timeout_s: float = 600,
                    only: int | None = None) -> dict:
    """Restart the running local nodes one at a time, so that the cluster serves throughout.

    Each node in turn: replicas are not reallocated while it is away (`allocation.enable:
    primaries`) and its shards are flushed, or with `drain` every shard is first moved off it
    (`allocation.exclude._name`); then SIGTERM, start (`up`), allocation back to normal, and green
    before the next. A search on the node that stops is sent to another by the client (make_client),
    and one whose shards failed as it left is sent again (retrieve.py). Allocation is set back to
    normal whatever happens, so an interrupted restart leaves no node excluded. `only`: that node alone."""
    layouts = [layout for layout in installed_layouts(settings) if _running_pid(layout)]
    if len(layouts) < 2:
        raise ProvisionError("a rolling restart needs a local cluster of two nodes or more (`es-faq engine up "
                             "--nodes 3`); with one node, use `es-faq engine down` and `up`")
    client = make_client(settings, timeout_s=timeout_s + 30)
    wait = {"wait_for_status": "green", "timeout": f"{int(timeout_s)}s", "wait_for_nodes": str(len(layouts))}
    started, nodes = time.monotonic(), []
    try:
        for layout in [layout for layout in layouts if only in (None, layout.number)]:
            t0 = time.monotonic()
            if drain:
                client.cluster.put_settings(persistent={"cluster.routing.allocation.exclude._name": layout.name})
                _green(client, wait_for_no_relocating_shards=True, **wait)
            else:
                client.cluster.put_settings(persistent={"cluster.routing.allocation.enable": "primaries"})
                client.options(ignore_status=(409, 503)).indices.flush()
            echo(f"rolling restart: stopping {layout.name}")
            stop_node(layout)
            up(settings, echo=echo, nodes=len(installed_layouts(settings)))
            client.cluster.put_settings(persistent={"cluster.routing.allocation.exclude._name": None,
                                                    "cluster.routing.allocation.enable": None})
            _green(client, **wait)
            nodes.append({"node": layout.name, "seconds": round(time.monotonic() - t0, 1)})
            echo(f"rolling restart: {layout.name} back, cluster green")
    finally:
        client.cluster.put_settings(persistent={"cluster.routing.allocation.exclude._name": None,
                                                "cluster.routing.allocation.enable": None})
    return {"drain": drain, "nodes": nodes, "seconds": round(time.monotonic() - started, 1),
            "health": client.cluster.health()["status"]}


def _green(client, **wait) -> None:
    health = client.cluster.health(**wait)
    if health["timed_out"]:
        raise ProvisionError(f"the cluster is {health['status']} (not green) after {wait['timeout']}, "
                             f"{health['relocating_shards']} shards moving, {health['unassigned_shards']} unassigned; "
                             "allocation is set back to normal, see `es-faq engine status`")


def down(settings: Settings, timeout_s: float = 60, node: int | None = None) -> int:
    """Stop the nodes this tool started under engine_dir (or only node `node`); how many were running."""
    layouts = [node_layout(settings, node)] if node else installed_layouts(settings)
    return sum(stop_node(layout, timeout_s) for layout in layouts)


def status(settings: Settings) -> dict:
    client = make_client(settings)
    health = cluster_health(client, settings)
    nodes = client.nodes.info(filter_path="nodes.*.version,nodes.*.name,nodes.*.http.publish_address").body
    nodes = nodes.get("nodes", {})
    versions = sorted({n["version"] for n in nodes.values()})
    local = {layout.name: _running_pid(layout) for layout in installed_layouts(settings)}
    return {"url": mask_url(settings.es_url), "version": ",".join(versions), "health": health["status"],
            "nodes": health["number_of_nodes"], "local_pid": local.get("es-faq-local-1"),
            "cluster": sorted([{"name": n.get("name"), "http": n.get("http", {}).get("publish_address"),
                                "local_pid": local.get(n.get("name"))} for n in nodes.values()],
                              key=lambda n: n["name"] or ""),
            "local_pids": local}
