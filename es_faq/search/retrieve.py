"""Stage: one Elasticsearch request -> hits, one per FAQ.

The request is a `_search` (one side, or both sides summed by the engine) or an `_msearch`
holding the lexical and the vector search, whose two ranked lists the fuse stage merges. Requests
are `elasticsearch.dsl` searches; their `to_dict()` is the body the debug output shows.

A response some of whose shards failed (`_shards.failed`: a node that left between a shard's query
and fetch phases, a copy that broke) is not taken as whole: the search is sent once more, and if
shards still fail, its hits are marked partial (search_partial "serve") or it fails with
PartialResults (search_partial "refuse")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from elasticsearch import ApiError, Elasticsearch, NotFoundError
from elasticsearch.dsl import MultiSearch, Q, Search
from elasticsearch.dsl.query import Query

from ..config.indices import MAX_ID_BYTES
from ..config.settings import Settings
from ..engine.client import engine_errors, refusal, refused, unreachable
from ..errors import IndexMissing, PartialResults

SOURCE_FIELDS = ["faq_id", "question", "answer", "category"]
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Hit:
    faq_id: str
    question: str
    answer: str
    category: str
    score: float
    matched: dict = field(default_factory=dict)  # which question text matched, per side
    scores: dict = field(default_factory=dict)  # per-side scores, filled by the fuse stage

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Shards:
    """How the shards of one search answered: `failed` of `total` in the response kept, whether it
    was sent twice to get it, and the failures' reason types."""

    total: int = 0
    failed: int = 0
    retried: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return self.failed > 0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, sections: Iterable[Mapping[str, Any]], retried: bool = False) -> Shards:
        """From the `_shards` sections of a response (one, or one per `_msearch` item)."""
        total = failed = 0
        reasons: set[str] = set()
        for section in sections:
            total += section.get("total", 0)
            failed += section.get("failed", 0)
            reasons.update(f.get("reason", {}).get("type", "?") for f in section.get("failures", []))
        return cls(total, failed, retried, tuple(sorted(reasons)))


class Hits(list[Hit]):
    """A ranked hit list, with how the shards answered: `shards.partial` means some found nothing."""

    shards: Shards = Shards()


# The two sides of a hybrid search, each of which can name the question that matched a hit best (inner hits).
MATCH_SIDES = ("lexical", "vector")


@dataclass(frozen=True)
class RetrievalQuery:
    """What retrieval needs of one analysed query, whatever the mode.

    `matches` asks for the best-matching question text of each hit (nested inner_hits), which
    costs about 0.2 ms per hit and side: evaluation at depth 50 leaves it out. `exclude` hides FAQs
    by id, as if they were not in the index (calibration holds gold FAQs out this way)."""

    tokens: Sequence[str]
    vector: Sequence[float] | None
    size: int
    category: str | None = None
    matches: bool = True
    synonyms: Sequence[str] = ()  # query-side expansion: the stored text is never rewritten with synonyms
    exclude: Sequence[str] = ()
    match_sides: Sequence[str] = MATCH_SIDES  # whose match details `matches` asks for


# The matched question's text is read from the hit's own `_source` at the inner hit's `_nested.offset`: an inner
# hit that fetched the text itself parsed the FAQ's source once more per hit (atec-10k: `took` 1.54-1.72 against
# 1.30-1.67 ms; docs/benchmarks.md, "The matched question without a second fetch").
MATCHED_SOURCE = "questions.text"


def _inner_hits(name: str) -> dict:
    return {"name": name, "size": 1, "_source": False}


def _matches(query: RetrievalQuery, side: str) -> bool:
    return query.matches and side in query.match_sides


def _filters(query: RetrievalQuery) -> list[Query]:
    filters = [Q("term", enabled=True)]
    if query.category:
        filters.append(Q("term", category=query.category))
    if query.exclude:
        filters.append(Q("bool", must_not=[Q("terms", faq_id=list(query.exclude))]))
    return filters


def _lexical(query: RetrievalQuery, settings: Settings) -> Query:
    match = Q("match", **{"questions.tokens": {"query": " ".join(query.tokens)}})
    if query.synonyms:
        match = Q("bool", should=[match, Q("match", **{"questions.tokens": {
            "query": " ".join(query.synonyms), "boost": settings.synonym_boost}})])
    return Q("nested", path="questions", score_mode="max", query=match,
             **({"inner_hits": _inner_hits("lexical")} if _matches(query, "lexical") else {}))


def search_request(mode: str, query: RetrievalQuery, settings: Settings) -> Search:
    """The search of one mode: bm25, vector, or hybrid (both sides, summed by the engine)."""
    filters = _filters(query)
    hybrid = mode == "hybrid"
    fields = SOURCE_FIELDS + [MATCHED_SOURCE] if any(_matches(query, side) for side in MATCH_SIDES) else SOURCE_FIELDS
    search = Search().extra(size=query.size).source(list(fields))  # s[:k] would add "from": 0
    if mode in ("bm25", "hybrid") and query.tokens:
        search = search.query(Q("bool", filter=filters, must=[_lexical(query, settings)],
                                boost=settings.lexical_boost if hybrid else 1.0))
    if mode in ("vector", "hybrid") and query.vector is not None:
        knn_k = max(settings.knn_k, query.size)
        search = search.knn(
            field="questions.vector", query_vector=list(query.vector), k=knn_k,
            num_candidates=max(settings.knn_num_candidates, knn_k),
            # The DSL types one query; Elasticsearch also takes the list, as the body always had it.
            filter=[f.to_dict() for f in filters],  # type: ignore[arg-type]
            boost=settings.vector_boost if hybrid else 1.0,
            inner_hits=_inner_hits("vector") if _matches(query, "vector") else None)
        if settings.knn_rescore_oversample:
            # The DSL's knn() takes no rescore_vector (elasticsearch 9.2): set on the section it added.
            search._knn[-1]["rescore_vector"] = {"oversample": settings.knn_rescore_oversample}
    return search


def side_requests(query: RetrievalQuery, settings: Settings) -> dict[str, Search]:
    """The lexical and the vector search, for one `_msearch`; a side with nothing to search is left out."""
    sides = {"lexical": search_request("bm25", query, settings), "vector": search_request("vector", query, settings)}
    return {side: search for side, search in sides.items() if _searches(search.to_dict())}


def _searches(body: Mapping[str, Any]) -> bool:
    """Whether a body asks for anything: with no tokens and no vector it has neither query nor knn."""
    return "query" in body or "knn" in body


def build_request(mode: str, tokens: Sequence[str], vector: Sequence[float] | None, k: int,
                  settings: Settings, category: str | None = None, matches: bool = True,
                  synonyms: Sequence[str] = (), exclude: Sequence[str] = ()) -> dict:
    """The exact search body, ready to paste into Kibana Dev Tools (see RetrievalQuery)."""
    query = RetrievalQuery(tokens, vector, k, category, matches, synonyms, exclude)
    return search_request(mode, query, settings).to_dict()


def build_sides(tokens: Sequence[str], vector: Sequence[float] | None, depth: int, settings: Settings,
                category: str | None = None, matches: bool = True, synonyms: Sequence[str] = (),
                exclude: Sequence[str] = ()) -> dict[str, dict]:
    """The lexical and the vector search bodies, each `depth` deep, for one `_msearch`."""
    query = RetrievalQuery(tokens, vector, depth, category, matches, synonyms, exclude)
    return {side: search.to_dict() for side, search in side_requests(query, settings).items()}


def _matched(hit: dict) -> dict:
    matched = {}
    questions = hit["_source"].get("questions") or []
    for side, inner in (hit.get("inner_hits") or {}).items():
        rows = inner["hits"]["hits"]
        if rows:
            offset = rows[0]["_nested"]["offset"]
            text = questions[offset].get("text") if offset < len(questions) else None
            matched[side] = {"text": text, "score": rows[0]["_score"]}
    return matched


def _missing(index: str) -> IndexMissing:
    return IndexMissing(f"index or alias {index!r} does not exist; load one with `es-faq index load FILE`")


def _call(settings: Settings, index: str, request: Callable[[], T]) -> T:
    try:
        with engine_errors(settings):
            return request()
    except NotFoundError:
        raise _missing(index) from None
    except ApiError as exc:  # a 4xx, or a 200 that is not Elasticsearch's: a documented error, not a traceback
        raise refusal(settings, exc, index) from None


def _hits(response: Mapping[str, Any], shards: Shards) -> Hits:
    hits = Hits(Hit(h["_source"]["faq_id"], h["_source"].get("question", ""), h["_source"].get("answer", ""),
                    h["_source"].get("category", ""), h["_score"], _matched(h))
                for h in response["hits"]["hits"])
    hits.shards = shards
    return hits


def _whole(settings: Settings, index: str, request: Callable[[], dict],
           sections: Callable[[dict], list[dict]]) -> tuple[dict, Shards]:
    """The response, sent once more when shards failed; PartialResults if they fail again and
    search_partial is "refuse"."""
    response = _call(settings, index, request)
    shards = Shards.of(sections(response))
    if not shards.partial:
        return response, shards
    first = shards
    response = _call(settings, index, request)
    shards = Shards.of(sections(response), retried=True)
    log.warning("shards failed; the search was sent again",
                extra={"index": index, "shards_total": first.total, "shards_failed": first.failed,
                       "reasons": list(first.reasons), "failed_again": shards.failed})
    if shards.partial and settings.search_partial == "refuse":
        raise PartialResults(
            f"{shards.failed} of {shards.total} shards of {index!r} failed twice ({', '.join(shards.reasons)}): "
            "a node may be leaving the cluster; try again. (search_partial=refuse; \"serve\" answers with "
            "the other shards' hits marked partial)")
    return response, shards


def execute(client: Elasticsearch, settings: Settings, index: str, request: Search | dict) -> Hits:
    """Run one search (a Search, or a body from build_request); a body asking for nothing finds nothing."""
    body = request.to_dict() if isinstance(request, Search) else request
    if not _searches(body):
        return Hits()
    response, shards = _whole(settings, index, lambda: client.search(index=index, **body).body,
                              lambda response: [response.get("_shards", {})])
    return _hits(response, shards)


def execute_sides(client: Elasticsearch, settings: Settings, index: str,
                  sides: Mapping[str, Search | dict]) -> dict[str, Hits]:
    """Run both sides in one `_msearch` round trip; a ranked hit list per side (each carries the
    shards of the whole request: a retry sends both sides again)."""
    if not sides:
        return {}
    multi = MultiSearch(index=index)
    for request in sides.values():
        multi = multi.add(request if isinstance(request, Search) else Search.from_dict(request))
    response, shards = _whole(settings, index, lambda: client.msearch(index=index, searches=multi.to_dict()).body,
                              lambda response: [item["_shards"] for item in response["responses"] if "_shards" in item])
    lists = {}
    for side, item in zip(sides, response["responses"], strict=True):
        if "error" in item:
            if item.get("status") == 404:
                raise _missing(index)
            status, error = item.get("status", 500), item["error"]
            if status >= 500 or status == 429:
                raise unreachable(settings, RuntimeError(str(error)[:200]))
            raise refused(settings, status, error.get("type", "") if isinstance(error, dict) else "", index)
        lists[side] = _hits(item, shards)
    return lists


FAQ_FIELDS = ["faq_id", "question", "answer", "category", "enabled", "updated_at", "questions.text",
              "questions.is_standard"]


def fetch_faq(client: Elasticsearch, settings: Settings, index: str, faq_id: str) -> dict | None:
    """One FAQ by id, as the knowledge base states it (realtime GET); None when there is none."""
    if not faq_id or len(faq_id.encode("utf-8")) > MAX_ID_BYTES:
        return None  # no such document can exist
    body = _call(settings, index, lambda: client.options(ignore_status=404).get(
        index=index, id=faq_id, source_includes=FAQ_FIELDS)).body
    if "error" in body:  # the alias itself is missing, not the document
        raise _missing(index)
    if not body.get("found"):
        return None
    return faq_record(body["_source"])


def faq_record(source: Mapping[str, Any]) -> dict:
    """An indexed FAQ's `_source` (FAQ_FIELDS) as the record `es-faq index load` reads (es_faq/kb/faq.py)."""
    return {"id": source["faq_id"], "question": source.get("question", ""),
            "similar_questions": [q["text"] for q in source.get("questions", []) if not q.get("is_standard")],
            "answer": source.get("answer", ""), "category": source.get("category", ""),
            "enabled": source.get("enabled", True), "updated_at": source.get("updated_at")}
