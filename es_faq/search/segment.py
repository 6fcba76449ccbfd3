"""Stage: normalised text -> jieba tokens, the form both queries and documents are indexed in."""

from __future__ import annotations

import logging
import threading
import unicodedata

import jieba

jieba.setLogLevel(logging.WARNING)


def _is_word(token: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in token)


class Segmenter:
    """A jieba tokenizer of its own, so user words never leak between segmenters."""

    def __init__(self):
        self._jieba = jieba.Tokenizer()
        self._lock = threading.Lock()
        self._user_words: set[str] = set()

    def _ready(self) -> None:
        # jieba loads its dictionary lazily and not thread-safely.
        if not self._jieba.initialized:
            with self._lock:
                self._jieba.initialize()

    def set_user_words(self, words: set[str]) -> None:
        """Make exactly `words` the user dictionary (added ones kept whole, removed ones forgotten)."""
        self._ready()
        with self._lock:
            for word in self._user_words - words:
                self._jieba.del_word(word)
            for word in words - self._user_words:
                self._jieba.add_word(word)
            self._user_words = set(words)

    def frequencies(self) -> dict[str, int]:
        """The general word counts of jieba's dictionary (a prior for typo correction)."""
        self._ready()
        return self._jieba.FREQ

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        """Default-mode segmentation with offsets, every piece kept (for correcting the text in place)."""
        self._ready()
        return list(self._jieba.tokenize(text))

    def tokens(self, text: str) -> list[str]:
        """Search-mode segmentation (long words plus their parts), punctuation dropped."""
        self._ready()
        return [t for t in self._jieba.lcut_for_search(text) if t.strip() and _is_word(t)]
