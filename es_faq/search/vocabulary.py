"""The knowledge base's own vocabulary: every token of its indexed questions, with how many questions use it.

Read from the tokens stored with the questions (so it is exactly what BM25 can match), kept in
Elasticsearch as one document per index version in `<vocab_index>` (written by `es-faq index load`,
or by the first search that needs it), and held in memory by each process."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError, helpers

from ..config.settings import Settings
from ..engine.client import ensure_small_index, live_indices
from .correct import Corrector

MAX_WORD_CHARS = 32


def collect(client: Elasticsearch, index: str) -> dict[str, int]:
    """token -> number of questions whose stored tokens hold it, over every FAQ of `index`."""
    counts: Counter[str] = Counter()
    for doc in helpers.scan(client, index=index, query={"query": {"match_all": {}}},
                            source=["questions.tokens"], preserve_order=False):
        for question in doc["_source"].get("questions", []):
            counts.update({t for t in question.get("tokens", "").split() if len(t) <= MAX_WORD_CHARS})
    return dict(counts)


class VocabularyStore:
    """Vocabularies by concrete index name, in `<vocab_index>` and in memory."""

    def __init__(self, client: Elasticsearch, settings: Settings):
        self.client = client
        self.settings = settings
        self.index = settings.vocab_index
        self._memory: dict[str, dict[str, int]] = {}
        self._aliases: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def write(self, index: str) -> dict[str, int]:
        """Collect the vocabulary of concrete index `index` and store it."""
        counts = collect(self.client, index)
        ensure_small_index(self.client, self.index, {"index": {"type": "keyword"}, "built": {"type": "date"},
                                                     "words": {"type": "keyword", "index": False, "doc_values": False}})
        self.client.index(index=self.index, id=index, refresh=True, document={
            "index": index, "built": int(time.time() * 1000),
            "words": [f"{word}\t{count}" for word, count in sorted(counts.items())]})
        self._memory[index] = counts
        self.prune()
        return counts

    def prune(self) -> list[str]:
        """Delete the vocabularies of indices that no longer exist (pruned or rolled-away versions)."""
        hits = self.client.search(index=self.index, size=100, source=False)["hits"]["hits"]
        gone = [h["_id"] for h in hits if not self.client.indices.exists(index=h["_id"], expand_wildcards="none")]
        for name in gone:
            self.client.options(ignore_status=404).delete(index=self.index, id=name)
            self._memory.pop(name, None)
        return gone

    def read(self, index: str) -> dict[str, int] | None:
        try:
            doc = self.client.get(index=self.index, id=index)
        except NotFoundError:
            return None
        counts = {}
        for row in doc["_source"]["words"]:
            word, _, count = row.rpartition("\t")
            counts[word] = int(count)
        return counts

    def concrete(self, alias: str) -> str | None:
        """The index behind `alias` (or `alias` itself when it is an index)."""
        names = live_indices(self.client, alias) or ([alias] if self.client.indices.exists(index=alias) else [])
        return names[0] if len(names) == 1 else None

    def counts(self, alias: str) -> dict[str, int] | None:
        """The vocabulary of what `alias` points to; None when there is no such index or no engine.

        The alias is re-resolved every dict_check_interval_s (an alias swap is followed without a
        request per search) by one thread; the others go on with what is known, so a hung node
        holds up no search behind the lock."""
        cached = self._aliases.get(alias)
        known = self._memory.get(cached[1]) if cached and cached[1] else None
        if cached and time.monotonic() - cached[0] < self.settings.dict_check_interval_s:
            return known
        if not self._lock.acquire(blocking=False):
            return known
        try:
            index = self.concrete(alias)
            if index is not None and index not in self._memory:
                stored = self.read(index)
                self._memory[index] = stored if stored is not None else self.write(index)
            self._aliases[alias] = (time.monotonic(), index)
            return self._memory[index] if index is not None else None
        except (TransportError, ApiError):
            # The search itself reports the outage; not asking again for the interval keeps a hung
            # node from costing every search a second timeout.
            self._aliases[alias] = (time.monotonic(), None)
            return None
        finally:
            self._lock.release()


class Correctors:
    """One Corrector per (index, dictionary version), built from the stored vocabulary and the user words."""

    def __init__(self, store: VocabularyStore):
        self.store = store
        self._cache: dict[tuple[int, int], Corrector] = {}

    def get(self, alias: str, user_words: list[str], dictionary_version: int,
            general: Mapping[str, int] | None = None) -> Corrector | None:
        counts = self.store.counts(alias)
        if counts is None:
            return None
        key = (id(counts), dictionary_version)
        if key not in self._cache:
            if len(self._cache) >= 4:  # the live version, and one or two being compared with it
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = Corrector(counts, user_words, general)
        return self._cache[key]
