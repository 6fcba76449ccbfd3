"""File checksums: what a manifest records for each file, and what a download is checked against."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at `path` under `algorithm` (a hashlib name)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def sha256_of(path: Path) -> str:
    return file_digest(path, "sha256")
