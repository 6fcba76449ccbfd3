"""The query path as named stages: analyse -> embed -> retrieve. CLI, API and eval all call `search`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from elasticsearch import Elasticsearch

from .analyze import Analysis, Analyzer
from .config import Settings
from .dictionary import DictionaryStore
from .embed import Embedder
from .errors import InvalidInput
from .es import make_client
from .fuse import fuse
from .retrieve import MODES, Hit, build_request, build_sides, execute, execute_sides


@dataclass
class SearchResult:
    query: str
    mode: str
    hits: list[Hit]
    analysis: Analysis
    request: dict  # a _search body, or {side: body} for the two searches of one _msearch
    timings_ms: dict = field(default_factory=dict)

    def as_dict(self, debug: bool = False) -> dict:
        out = {"query": self.query, "mode": self.mode, "hits": [h.as_dict() for h in self.hits],
               "timings_ms": self.timings_ms}
        if debug:
            out["analysis"] = self.analysis.as_dict()
            out["es_request"] = self.request
        return out


class Searcher:
    """Holds what a search needs for its lifetime: settings, the ES client, the analyzer and the model."""

    def __init__(self, settings: Settings, client: Elasticsearch | None = None,
                 embedder: Embedder | None = None, analyzer: Analyzer | None = None):
        self.settings = settings
        self.client = client or make_client(settings)
        self.analyzer = analyzer or Analyzer(settings, DictionaryStore(self.client, settings))
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.settings)
        return self._embedder

    def validate(self, query, k) -> tuple[str, int]:
        if not isinstance(query, str):
            raise InvalidInput("query must be a string")
        if not query.strip():
            raise InvalidInput("query is empty")
        if len(query) > self.settings.query_max_chars:
            raise InvalidInput(f"query is {len(query)} characters; the limit is {self.settings.query_max_chars}")
        if k is None:
            k = self.settings.search_k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.settings.search_max_k:
            raise InvalidInput(f"k must be an integer from 1 to {self.settings.search_max_k}")
        return query, k

    def search(self, query: str, k: int | None = None, mode: str = "hybrid", *,
               index: str | None = None, category: str | None = None, matches: bool = True) -> SearchResult:
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
        query, k = self.validate(query, k)
        timings = {}
        t0 = time.perf_counter()
        self.analyzer.refresh()
        analysis = self.analyzer.analyze(query, expand=True)
        t1 = time.perf_counter()
        timings["analyze"] = (t1 - t0) * 1000
        vector = None
        if mode != "bm25" and analysis.text:
            vector = self.embedder.encode([analysis.text], is_query=True)[0].tolist()
        t2 = time.perf_counter()
        timings["embed"] = (t2 - t1) * 1000
        index = index or self.settings.index_alias
        fusion = self.settings.fusion
        if mode == "hybrid" and fusion != "sum":
            depth = max(k, self.settings.knn_k)
            request = build_sides(analysis.tokens, vector, depth, self.settings, category, matches,
                                  analysis.expansions)
            lists = execute_sides(self.client, self.settings, index, request)
            t_es = time.perf_counter()
            hits = fuse(lists, fusion, self.settings.lexical_weight, self.settings.rrf_k, k)
        else:
            request = build_request(mode, analysis.tokens, vector, k, self.settings, category, matches,
                                    analysis.expansions)
            hits = execute(self.client, self.settings, index, request)
            t_es = time.perf_counter()
        t3 = time.perf_counter()
        timings["retrieve"] = (t_es - t2) * 1000
        timings["fuse"] = (t3 - t_es) * 1000
        timings["total"] = (t3 - t0) * 1000
        return SearchResult(query, mode, hits, analysis, request, {k_: round(v, 2) for k_, v in timings.items()})
