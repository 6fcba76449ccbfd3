"""The query path as named stages: analyse -> embed -> retrieve (-> fuse) -> rerank -> decide.
CLI, API and eval all call `Searcher.search`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from elasticsearch import Elasticsearch

from ..config.settings import SEARCH_MODES, Settings
from ..engine.client import make_client
from ..errors import InvalidInput
from .analyze import Analysis, Analyzer
from .correct import Corrector
from .decide import MARGIN_DEPTH, Calibration, Decision, decide, leader_differences, near_a_threshold
from .dictionary import DictionaryStore
from .embed import Embedder
from .fuse import fuse
from .rerank import DECISION_SIDES, Reranker
from .retrieve import MATCH_SIDES, Hit, RetrievalQuery, Shards, execute, execute_sides, search_request, side_requests
from .vocabulary import Correctors, VocabularyStore


def _stage(hits: list[Hit], key: str | None = None) -> list[dict]:
    """A ranked list as the debug output shows it."""
    return [{"faq_id": h.faq_id, "question": h.question,
             "score": h.scores.get(key, h.score) if key else h.score} for h in hits]


class Timer:
    """Milliseconds per stage: `with timer("embed"): ...`; `total()` adds the total since creation."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, (time.perf_counter() - began) * 1000)

    def record(self, stage: str, ms: float) -> None:
        self.ms[stage] = self.ms.get(stage, 0.0) + ms

    def total(self) -> dict[str, float]:
        total = (time.perf_counter() - self.started) * 1000
        return {stage: round(ms, 2) for stage, ms in {**self.ms, "total": total}.items()}


def hit_view(hit: Hit, debug: bool) -> dict:
    """A hit as the API and the CLI show it; `debug` adds the matched questions and every score."""
    rerank = hit.scores.get("rerank")
    out = {"faq_id": hit.faq_id, "question": hit.question, "answer": hit.answer, "category": hit.category,
           # What the list is ordered by: the rerank score in mode rerank, else the retrieval score.
           "score": rerank if rerank is not None else hit.score}
    if debug:
        out["matched"] = hit.matched
        # Inner hits carry each side's raw score; the fuse stage keeps them too when it merges lists.
        side = {name: hit.matched.get(name, {}).get("score", hit.scores.get(name)) for name in ("lexical", "vector")}
        out["scores"] = {**side, "fused": hit.score, "cross_encoder": hit.scores.get("cross_encoder"), "rerank": rerank}
    return out


@dataclass
class SearchResult:
    query: str
    mode: str
    hits: list[Hit]
    analysis: Analysis
    request: dict  # a _search body, or {side: body} for the two searches of one _msearch
    decision: Decision
    timings_ms: dict = field(default_factory=dict)
    stages: dict[str, list[dict]] = field(default_factory=dict)  # with explain: each stage's ranking
    shards: Shards = field(default_factory=Shards)  # partial: some shards found nothing, even when asked twice

    @property
    def partial(self) -> bool:
        return self.shards.partial

    def as_dict(self, debug: bool = False) -> dict:
        out = {"query": self.query, "mode": self.mode, "decision": self.decision.as_dict(),
               "hits": [hit_view(h, debug) for h in self.hits], "timings_ms": self.timings_ms,
               "partial": self.partial}
        if debug:
            out["shards"] = self.shards.as_dict()
            out["analysis"] = self.analysis.as_dict()
            out["es_request"] = self.request
            out["stages"] = self.stages
        return out


class Searcher:
    """Holds what a search needs for its lifetime: settings, the ES client, the analyzer and the model."""

    def __init__(self, settings: Settings, client: Elasticsearch | None = None,
                 embedder: Embedder | None = None, analyzer: Analyzer | None = None,
                 reranker: Reranker | None = None):
        self.settings = settings
        self.client = client or make_client(settings)
        self.analyzer = analyzer or Analyzer(settings, DictionaryStore(self.client, settings))
        self._embedder = embedder
        self._reranker = reranker
        self._calibration: Calibration | None = None
        self._correctors: Correctors | None = None

    def corrector(self, index: str) -> Corrector | None:
        """The typo corrector for what `index` points to (None with typo_correction off or no such index)."""
        if not self.settings.typo_correction:
            return None
        if self._correctors is None:
            self._correctors = Correctors(VocabularyStore(self.client, self.settings))
        dictionary = self.analyzer.dictionary
        return self._correctors.get(index, dictionary.words, dictionary.version,
                                   self.analyzer.segmenter.frequencies())

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.settings)
        return self._embedder

    @property
    def reranker(self) -> Reranker:
        if self._reranker is None:
            self._reranker = Reranker(self.settings)
        return self._reranker

    @property
    def calibration(self) -> Calibration | None:
        """The reranker's decision calibration; None when it has none (searches then only suggest)."""
        if self._calibration is None and Calibration.path(self.reranker.manifest.name).exists():
            self._calibration = Calibration.load(self.reranker.manifest.name)
        return self._calibration

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

    def search(self, query: str, k: int | None = None, mode: str | None = None, *,
               index: str | None = None, category: str | None = None, matches: bool = True,
               exclude: Sequence[str] = (), explain: bool = False) -> SearchResult:
        """`mode` defaults to search_mode. `explain` adds every stage's ranking (one more ES round
        trip for the two sides); `exclude` hides FAQ ids as if they were not indexed."""
        mode = self.settings.search_mode if mode is None else mode
        if mode not in SEARCH_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}")
        query, k = self.validate(query, k)
        settings = self.settings
        reranking = mode == "rerank"
        retrieval = "hybrid" if reranking else mode
        # The decision reads the retrieval and vector margins over the top MARGIN_DEPTH, whatever k asks for.
        depth = max(k, settings.rerank_depth if reranking else 0, settings.decide_depth,
                    MARGIN_DEPTH if settings.decide_depth else 0)
        timer = Timer()
        index = index or settings.index_alias
        with timer("analyze"):
            self.analyzer.refresh()
            analysis = self.analyzer.analyze(query, expand=True, corrector=self.corrector(index))
        with timer("embed"):
            vector = None
            if retrieval != "bm25" and analysis.text:
                vector = self.embedder.encode([analysis.text], is_query=True)[0].tolist()
        # Match details: both sides' best questions for the caller, reranking and explain; the decision alone
        # reads the vector side's (DECISION_SIDES), so only that side's are asked for then.
        shown = matches or reranking or explain
        wanted = RetrievalQuery(analysis.tokens, vector, depth, category, shown or settings.decide_depth > 0,
                                analysis.expansions, exclude, MATCH_SIDES if shown else DECISION_SIDES)
        request, hits, lists, shards = self._retrieve(retrieval, wanted, index, timer)
        stages: dict[str, list[dict]] = {}
        if explain:
            if lists is None and retrieval == "hybrid":  # the summed request has no per-side lists
                lists = execute_sides(self.client, settings, index, side_requests(self._sides(wanted), settings))
            stages.update({side: _stage(side_hits) for side, side_hits in (lists or {}).items()})
            stages[retrieval if retrieval != "hybrid" else "fused"] = _stage(hits)
        if reranking and hits:
            with timer("rerank"):
                head = self.reranker.rerank(analysis.text, hits[:settings.rerank_depth],
                                            settings.rerank_retrieval_weight)
                hits = head + hits[settings.rerank_depth:]
            if explain:
                stages["reranked"] = _stage(head, "rerank")
        with timer("decide"):
            hits, decision = self._decide(analysis.text, hits, retrieval)
        if explain and settings.decide_depth and hits:
            stages["decided"] = _stage(hits[:settings.decide_depth], "cross_encoder")
        return SearchResult(query, mode, hits[:k], analysis, request, decision, timer.total(), stages, shards)

    def _sides(self, wanted: RetrievalQuery) -> RetrievalQuery:
        """Fused here, each side goes at least knn_k deep; summed by the engine, `size` is enough."""
        if self.settings.fusion == "sum":
            return wanted
        return replace(wanted, size=max(wanted.size, self.settings.knn_k))

    def _retrieve(self, retrieval: str, wanted: RetrievalQuery, index: str,
                  timer: Timer) -> tuple[dict, list[Hit], Mapping[str, list[Hit]] | None, Shards]:
        """The request as sent (a body, or a body per side), the hits, the per-side lists if fused here,
        and how the shards answered."""
        fusion = self.settings.fusion
        if retrieval == "hybrid" and fusion != "sum":
            sides = side_requests(self._sides(wanted), self.settings)
            with timer("retrieve"):
                lists = execute_sides(self.client, self.settings, index, sides)
            with timer("fuse"):
                hits = fuse(lists, fusion, self.settings.lexical_weight, self.settings.rrf_k, wanted.size)
            shards = next(iter(lists.values())).shards if lists else Shards()
            return {side: search.to_dict() for side, search in sides.items()}, hits, lists, shards
        search = search_request(retrieval, wanted, self.settings)
        with timer("retrieve"):
            hits = execute(self.client, self.settings, index, search)
        timer.record("fuse", 0.0)
        return search.to_dict(), hits, None, hits.shards

    def _decide(self, text: str, hits: list[Hit], retrieval: str) -> tuple[list[Hit], Decision]:
        """The cross-encoder over the head (unless full reranking scored it), then the decision.

        The order stays retrieval's: on diac dev, letting the cross-encoder's best lead the top 3
        lowered R@1 from 0.933 to 0.894 (docs/benchmarks.md); it verifies, it does not rank."""
        if not self.settings.decide_depth:
            return hits, decide(hits, 0, self.settings, None, retrieval)
        settings = self.settings
        depth = min(settings.decide_depth, len(hits))
        head, rest = hits[:depth], hits[depth:]
        orders = 2 if settings.rerank_both_orders else 1
        calibration = self.calibration
        found = leader_differences(hits, text)  # the scores do not change them: read once
        if any("cross_encoder" not in h.scores for h in head):
            if orders == 2 and settings.decide_order_band < 1 and calibration is not None:
                # One order first; the reverse only where it could change the action (decide_order_band).
                forward = self.reranker.text_logits(text, head, sides=DECISION_SIDES)
                first = self.reranker.with_logits(head, forward, DECISION_SIDES)
                decision = decide(first + rest, depth, settings, calibration, retrieval, text, found)
                if not near_a_threshold(decision, settings, calibration):
                    return first + rest, replace(decision, orders=1)
                reverse = self.reranker.text_logits(text, head, True, DECISION_SIDES)
                head = self.reranker.with_logits(head, (forward + reverse) / 2, DECISION_SIDES)
            else:
                head = self.reranker.score_hits(text, head, DECISION_SIDES)
        hits = head + rest
        decision = decide(hits, depth, settings, calibration, retrieval, text, found)
        return hits, replace(decision, orders=orders) if head else decision
