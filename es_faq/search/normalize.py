"""Stage: raw text -> canonical text (width, case, emoji, whitespace), bounded in length."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# Emoji and pictographs (category So), their joiners and variation selectors carry no FAQ meaning.
_DROP = {"So", "Cs", "Co"}
_INVISIBLE = {"\u200d", "\ufe0e", "\ufe0f"}


def _keep(ch: str) -> bool:
    return ch not in _INVISIBLE and unicodedata.category(ch) not in _DROP


def normalize(text: str, max_chars: int | None = None) -> str:
    """NFKC folds full-width letters, digits and punctuation to half-width; then lower-case."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if _keep(ch))
    text = _SPACES.sub(" ", text).strip()
    if max_chars is not None:
        text = text[:max_chars]
    return text
