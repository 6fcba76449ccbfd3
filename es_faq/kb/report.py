"""What the query log says needs work: no-match rate, failing queries, and clusters of them to add as questions."""

from __future__ import annotations

import re

import numpy as np
from elasticsearch import Elasticsearch

from ..config.indices import querylog_pattern
from ..config.settings import Settings
from ..errors import InvalidInput
from ..search.embed import Embedder
from .querylog import FAILING, NO_MATCH, NORMALIZED, UNHELPFUL, Condition, searches

SINCE = re.compile(r"[1-9][0-9]{0,5}[smhdw]")
# Distinct failing queries read for clustering: enough for a week of a busy FAQ, small enough to
# embed in seconds on 2 cores (one query at a time, embed_batch_size).
CLUSTER_MAX_QUERIES = 1000


def check_since(since: str) -> None:
    """A query-log window as the readers take it (`report`, `doctor`, `querylog bench`): a number and a unit."""
    if not SINCE.fullmatch(since):
        raise InvalidInput(f"since={since[:40]!r}: give a number and a unit s, m, h, d or w, like 30d or 7d")


def _terms(aggs: dict, name: str) -> list[dict]:
    return [{"query": b["key"], "count": b["doc_count"]} for b in aggs[name]["by_query"]["buckets"]]


def _clusters(counts: dict[str, int], embedder: Embedder, threshold: float) -> list[dict]:
    """Greedy: each query, most frequent first, joins the first cluster whose seed is within `threshold` cosine."""
    queries = sorted(counts, key=lambda q: (-counts[q], q))
    if not queries:
        return []
    # Unit vectors (the embedder normalises), without the query prefix: queries meet queries here.
    vectors = embedder.encode(queries)
    seeds: list[int] = []
    members: dict[int, list[int]] = {}
    for i in range(len(queries)):
        similarities = vectors[seeds] @ vectors[i] if seeds else np.empty(0)
        best = int(np.argmax(similarities)) if len(similarities) else -1
        if best >= 0 and similarities[best] >= threshold:
            members[seeds[best]].append(i)
        else:
            seeds.append(i)
            members[i] = [i]
    out = [{"representative": queries[s], "count": sum(counts[queries[m]] for m in members[s]),
            "queries": [queries[m] for m in members[s]]} for s in seeds]
    return sorted(out, key=lambda c: (-c["count"], c["representative"]))


def query_log_report(client: Elasticsearch, settings: Settings, since: str = "7d", top: int = 20,
                     embedder: Embedder | None = None, threshold: float = 0.85) -> dict:
    """Searches since `since` (e.g. 7d, 24h): no-match rate, top failing queries, and clusters of them."""
    check_since(since)
    if not 1 <= top <= 1000:
        raise InvalidInput("top must be from 1 to 1000")

    def by_query(condition: Condition, size: int) -> dict:
        return {"filter": condition.dsl(), "aggs": {"by_query": {"terms": {"field": NORMALIZED, "size": size}}}}

    index = querylog_pattern(settings.query_log_prefix)
    body = client.search(index=index, size=0, track_total_hits=True, allow_no_indices=True, ignore_unavailable=True,
                         query=searches(since),
                         aggs={"no_match": by_query(NO_MATCH, top), "unhelpful": by_query(UNHELPFUL, top),
                               "failing": by_query(FAILING, CLUSTER_MAX_QUERIES)}).body
    total = body["hits"]["total"]["value"]
    aggs = body.get("aggregations")
    if not aggs:  # no query-log index yet
        return {"index": index, "since": since, "total_searches": 0, "no_match": 0, "no_match_rate": 0.0,
                "top_no_match": [], "top_unhelpful": [], "clusters": []}
    failing_counts = {row["query"]: row["count"] for row in _terms(aggs, "failing")}
    clusters = _clusters(failing_counts, embedder or Embedder(settings), threshold) if failing_counts else []
    return {"index": index, "since": since, "total_searches": total,
            "no_match": aggs["no_match"]["doc_count"],
            "no_match_rate": round(aggs["no_match"]["doc_count"] / total, 4) if total else 0.0,
            "top_no_match": _terms(aggs, "no_match"), "top_unhelpful": _terms(aggs, "unhelpful"),
            "clusters": clusters[:top]}
