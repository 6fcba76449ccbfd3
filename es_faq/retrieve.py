"""Stage: one Elasticsearch request -> hits, one per FAQ.

The request is a `_search` (one side, or both sides summed by the engine) or an `_msearch`
holding the lexical and the vector search, whose two ranked lists the fuse stage merges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from elasticsearch import Elasticsearch, NotFoundError

from .config import Settings
from .errors import EngineUnavailable, IndexMissing
from .es import engine_errors, unreachable

MODES = ("bm25", "vector", "hybrid")
SOURCE_FIELDS = ["faq_id", "question", "answer", "category"]


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


def _inner_hits(name: str) -> dict:
    return {"name": name, "size": 1, "_source": ["questions.text"]}


def build_request(mode: str, tokens: list[str], vector: list[float] | None, k: int,
                  settings: Settings, category: str | None = None, matches: bool = True,
                  synonyms: list[str] = (), exclude: list[str] = ()) -> dict:
    """The exact search body, ready to paste into Kibana Dev Tools.

    `matches` asks for the best-matching question text of each hit (nested inner_hits), which
    costs about 0.2 ms per hit and side: evaluation at depth 50 leaves it out. `exclude` hides FAQs
    by id, as if they were not in the index (calibration holds gold FAQs out this way)."""
    filters = [{"term": {"enabled": True}}]
    if category:
        filters.append({"term": {"category": category}})
    if exclude:
        filters.append({"bool": {"must_not": {"terms": {"faq_id": list(exclude)}}}})
    body: dict = {"size": k, "_source": SOURCE_FIELDS}
    if mode in ("bm25", "hybrid") and tokens:
        match = {"match": {"questions.tokens": {"query": " ".join(tokens)}}}
        if synonyms:  # query-side expansion: the stored text is never rewritten with synonyms
            match = {"bool": {"should": [match, {"match": {"questions.tokens": {
                "query": " ".join(synonyms), "boost": settings.synonym_boost}}}]}}
        lexical = {"nested": {"path": "questions", "score_mode": "max", "query": match}}
        if matches:
            lexical["nested"]["inner_hits"] = _inner_hits("lexical")
        body["query"] = {"bool": {"filter": filters, "must": [lexical],
                                  "boost": settings.lexical_boost if mode == "hybrid" else 1.0}}
    if mode in ("vector", "hybrid") and vector is not None:
        knn_k = max(settings.knn_k, k)
        body["knn"] = {"field": "questions.vector", "query_vector": vector, "k": knn_k,
                       "num_candidates": max(settings.knn_num_candidates, knn_k), "filter": filters,
                       "boost": settings.vector_boost if mode == "hybrid" else 1.0}
        if matches:
            body["knn"]["inner_hits"] = _inner_hits("vector")
    return body


def build_sides(tokens: list[str], vector: list[float] | None, depth: int, settings: Settings,
                category: str | None = None, matches: bool = True, synonyms: list[str] = (),
                exclude: list[str] = ()) -> dict[str, dict]:
    """The lexical and the vector search bodies, each `depth` deep, for one `_msearch`."""
    sides = {"lexical": build_request("bm25", tokens, None, depth, settings, category, matches, synonyms, exclude),
             "vector": build_request("vector", [], vector, depth, settings, category, matches, exclude=exclude)}
    return {side: body for side, body in sides.items() if "query" in body or "knn" in body}


def _matched(hit: dict) -> dict:
    matched = {}
    for side, inner in (hit.get("inner_hits") or {}).items():
        rows = inner["hits"]["hits"]
        if rows:
            matched[side] = {"text": rows[0]["_source"].get("text"), "score": rows[0]["_score"]}
    return matched


def _missing(index: str) -> IndexMissing:
    return IndexMissing(f"index or alias {index!r} does not exist; load one with `es-faq index load FILE`")


def _call(settings: Settings, index: str, request):
    try:
        with engine_errors(settings):
            return request()
    except NotFoundError:
        raise _missing(index) from None


def _hits(response: dict) -> list[Hit]:
    return [Hit(h["_source"]["faq_id"], h["_source"].get("question", ""), h["_source"].get("answer", ""),
                h["_source"].get("category", ""), h["_score"], _matched(h))
            for h in response["hits"]["hits"]]


def execute(client: Elasticsearch, settings: Settings, index: str, body: dict) -> list[Hit]:
    if "query" not in body and "knn" not in body:
        return []
    return _hits(_call(settings, index, lambda: client.search(index=index, **body)))


def execute_sides(client: Elasticsearch, settings: Settings, index: str, sides: dict[str, dict]) -> dict[str, list[Hit]]:
    """Run both sides in one `_msearch` round trip; a ranked hit list per side."""
    if not sides:
        return {}
    searches = [part for body in sides.values() for part in ({"index": index}, body)]
    response = _call(settings, index, lambda: client.msearch(searches=searches))
    lists = {}
    for side, item in zip(sides, response["responses"]):
        if "error" in item:
            if item.get("status") == 404:
                raise _missing(index)
            raise unreachable(settings, RuntimeError(str(item["error"])[:200]))
        lists[side] = _hits(item)
    return lists


FAQ_FIELDS = ["faq_id", "question", "answer", "category", "enabled", "updated_at", "questions.text",
              "questions.is_standard"]
MAX_ID_BYTES = 512  # Elasticsearch's limit on an _id


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
    source = body["_source"]
    return {"id": source["faq_id"], "question": source.get("question", ""),
            "similar_questions": [q["text"] for q in source.get("questions", []) if not q.get("is_standard")],
            "answer": source.get("answer", ""), "category": source.get("category", ""),
            "enabled": source.get("enabled", True), "updated_at": source.get("updated_at")}
