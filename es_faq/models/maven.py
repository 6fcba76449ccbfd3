"""Download Maven Central artifacts with a progress bar and a checksum, into a cache."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import ProvisionError
from .files import file_digest, sha256_of


def _sha1_of(path: Path) -> str:
    return file_digest(path, "sha1")


def maven_url(base: str, coords: str) -> str:
    """`group:artifact:version:packaging` -> the artifact's URL under `base`."""
    group, artifact, version, packaging = coords.split(":")
    return f"{base.rstrip('/')}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.{packaging}"


def _open(url: str, timeout: float = 60):
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError) as exc:
        raise ProvisionError(
            f"cannot download {url}: {exc}. Check network access to the Maven repository, "
            "or set ES_FAQ_MAVEN_URL to a mirror."
        ) from None


def fetch_maven(base: str, coords: str, dest_dir: Path, sha256: str | None = None) -> Path:
    """Fetch an artifact once, verified against a pinned sha256 or else the repository's .sha1."""
    url = maven_url(base, coords)
    dest = dest_dir / url.rsplit("/", 1)[1]
    if sha256:
        expected, digest_of = sha256.lower(), sha256_of
    else:
        with _open(url + ".sha1") as resp:
            expected, digest_of = resp.read().decode().split()[0].strip().lower(), _sha1_of
    if dest.exists() and digest_of(dest) == expected:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(dest.suffix + ".part")
    with _open(url) as resp, partial.open("wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))
    actual = digest_of(partial)
    if actual != expected:
        partial.unlink()
        raise ProvisionError(f"checksum mismatch for {url}: got {actual}, expected {expected}")
    shutil.move(partial, dest)
    return dest
