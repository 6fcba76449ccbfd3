"""normalize -> rewrite (-> correct for queries) -> segment (-> expand for queries), shared by indexing and querying."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

from elasticsearch import ApiError, TransportError

from ..config.settings import Settings
from .correct import Corrector
from .dictionary import Dictionary, DictionaryStore
from .normalize import normalize
from .rewrite import Rewriter
from .segment import Segmenter


@dataclass(frozen=True)
class Analysis:
    original: str
    normalized: str
    text: str  # after rewrites and filler removal: what is embedded
    tokens: list[str]
    truncated: bool
    rewrites: list[list[str]] = field(default_factory=list)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    dictionary_version: int = 0
    corrections: list[list[str]] = field(default_factory=list)  # [typed, knowledge-base word] (search/correct.py)

    @property
    def expansions(self) -> list[str]:
        return [alt for alts in self.synonyms.values() for alt in alts]

    def as_dict(self) -> dict:
        return asdict(self)


class Analyzer:
    """Holds the compiled dictionaries; with a store, picks up changes within dict_check_interval_s."""

    def __init__(self, settings: Settings, store: DictionaryStore | None = None,
                 dictionary: Dictionary | None = None):
        self.settings = settings
        self.segmenter = Segmenter()
        self._store = store
        self._checked = float("-inf")
        self._reload_lock = threading.Lock()
        self._apply(dictionary if dictionary is not None else Dictionary())
        if dictionary is None:
            self.refresh()

    def _apply(self, dictionary: Dictionary) -> None:
        self.segmenter.set_user_words(set(dictionary.words))
        self.rewriter = Rewriter(dictionary)
        self.dictionary = dictionary

    def refresh(self) -> None:
        """Reload when the stored version moved; at most one version check per interval."""
        if self._store is None or time.monotonic() - self._checked < self.settings.dict_check_interval_s:
            return
        # One thread checks; the others go on with the dictionaries they have instead of queueing
        # behind it (on a hung node the check takes the client's whole timeout).
        if not self._reload_lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() - self._checked < self.settings.dict_check_interval_s:
                return
            self._checked = time.monotonic()
            if self._store.version() != self.rewriter.version:
                self._apply(self._store.load())
        except (TransportError, ApiError):
            # Elasticsearch is down: keep the dictionaries we have; the search itself reports
            # the outage, and the check is tried again after the interval.
            pass
        finally:
            self._reload_lock.release()

    def analyze(self, text: str, max_chars: int | None = None, expand: bool = False,
                corrector: Corrector | None = None) -> Analysis:
        """`corrector` (queries only) replaces misspelt and pinyin spans with the knowledge base's words."""
        limit = max_chars or self.settings.analyze_max_chars
        normalized = normalize(text)
        rewriter = self.rewriter
        rewritten, applied = rewriter.rewrite(normalized[:limit])
        corrections: list[list[str]] = []
        if corrector is not None:
            rewritten, corrections = corrector.correct(self.segmenter.spans(rewritten), rewritten)
        tokens = [t for t in self.segmenter.tokens(rewritten) if t not in rewriter.filler_words]
        synonyms = rewriter.expand(tokens) if expand else {}
        return Analysis(text, normalized[:limit], rewritten, tokens, len(normalized) > limit, applied, synonyms,
                        rewriter.version, corrections)
