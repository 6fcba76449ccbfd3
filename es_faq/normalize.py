"""Stage: raw text -> canonical text (width, case, whitespace), bounded in length."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalize(text: str, max_chars: int | None = None) -> str:
    """NFKC folds full-width letters, digits and punctuation to half-width; then lower-case."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SPACES.sub(" ", text).strip()
    if max_chars is not None:
        text = text[:max_chars]
    return text
