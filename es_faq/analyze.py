"""normalize -> segment, shared by indexing and querying so both sides are analysed alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import Settings
from .normalize import normalize
from .segment import Segmenter


@dataclass(frozen=True)
class Analysis:
    original: str
    normalized: str
    tokens: list[str]
    truncated: bool

    def as_dict(self) -> dict:
        return asdict(self)


class Analyzer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.segmenter = Segmenter()

    def analyze(self, text: str, max_chars: int | None = None) -> Analysis:
        limit = max_chars or self.settings.analyze_max_chars
        normalized = normalize(text)
        return Analysis(text, normalized[:limit], self.segmenter.tokens(normalized[:limit]), len(normalized) > limit)
