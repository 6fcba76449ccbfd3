"""The query builder (retrieve stage) on its own: no Elasticsearch needed.

tests/fixtures/retrieve_bodies.json holds the bodies the hand-built retrieve.py produced (commit
5472d35) for every mode, fusion, category, exclude and synonyms combination, with one intended change
since (2026-12-05: an inner hit fetches no source, and the hit's `_source` carries `questions.text` where match
details are asked for); the elasticsearch.dsl builder must give the same. Re-record, only for an intended change of the
bodies, with `python -m tests.test_retrieve`."""

from __future__ import annotations

import dataclasses
import inspect
import json
from itertools import product
from pathlib import Path

import pytest
from elasticsearch.dsl import Search

from es_faq.config.settings import FUSIONS, RETRIEVAL_MODES, Settings
from es_faq.search import retrieve
from es_faq.search.retrieve import RetrievalQuery, build_request, build_sides, search_request, side_requests

FIXTURE = Path(__file__).parent / "fixtures" / "retrieve_bodies.json"
# The defaults alone, whatever ES_FAQ_* the environment sets, with the lexical boost the bodies were recorded
# with (0.01; the default is 0.002 since 2026-12-03): a boost is a setting, not the builder's shape.
SETTINGS = Settings(lexical_boost=0.01)
TOKENS = ["花呗", "延期", "还款"]
VECTOR = [0.125, -0.5, 0.25]
K = 5
# What one case varies beyond mode, fusion, category, exclude and synonyms.
EDGES = {"": {}, "no-matches": {"matches": False}, "no-tokens": {"tokens": []}, "no-vector": {"vector": None},
         "nothing-to-search": {"tokens": [], "vector": None},
         "k-past-knn_k": {"k": SETTINGS.knn_k + 10}}


def _request(mode: str, fusion: str, category: str | None, exclude: tuple[str, ...], synonyms: tuple[str, ...],
             tokens: list[str] = TOKENS, vector: list[float] | None = VECTOR, k: int = K, matches: bool = True) -> dict:
    """The body (or {side: body}) the pipeline sends for these arguments."""
    if mode == "hybrid" and fusion != "sum":  # two sides, each at least knn_k deep (pipeline.py)
        return build_sides(tokens, vector, max(k, SETTINGS.knn_k), SETTINGS, category, matches, list(synonyms),
                           list(exclude))
    return build_request(mode, tokens, vector, k, SETTINGS, category, matches, list(synonyms), list(exclude))


def cases() -> dict[str, dict]:
    out = {}
    for mode, fusion, category, exclude, synonyms in product(RETRIEVAL_MODES, FUSIONS, (None, "花呗"),
                                                              ((), ("faq-1", "faq-2")), ((), ("推迟",))):
        for edge, changes in EDGES.items():
            if edge and (category is None or not exclude or not synonyms):
                continue  # edges only with everything else switched on
            key = f"{mode}/{fusion}/category={category}/exclude={len(exclude)}/synonyms={len(synonyms)}"
            out[key + (f"/{edge}" if edge else "")] = _request(mode, fusion, category, exclude, synonyms, **changes)
    return out


RECORDED = json.loads(FIXTURE.read_text(encoding="utf-8")) if FIXTURE.exists() else {}
# Clauses that would parse user text as syntax, or run code; none may ever be built.
SYNTAX_CLAUSES = {"query_string", "simple_query_string", "regexp", "wildcard", "prefix", "fuzzy", "script",
                  "script_score", "match_all", "intervals", "percolate", "wrapper"}


def keys(node):
    """Every key of a nested body."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from keys(value)


def _as_the_dsl_writes(node):
    """A recorded body with the one form the DSL writes otherwise: a bool clause holding a single
    query becomes a one-item list (`"must_not": [{...}]`), the same query to Elasticsearch."""
    if isinstance(node, list):
        return [_as_the_dsl_writes(value) for value in node]
    if not isinstance(node, dict):
        return node
    out = {key: _as_the_dsl_writes(value) for key, value in node.items()}
    if isinstance(out.get("bool"), dict):
        out["bool"] = {clause: [value] if clause in ("must", "must_not", "should", "filter") and isinstance(value, dict)
                       else value for clause, value in out["bool"].items()}
    return out


def test_every_combination_was_recorded():
    assert set(cases()) == set(RECORDED) and len(RECORDED) == 117


def test_bodies_are_todays():
    built = cases()
    assert [key for key, body in RECORDED.items() if built[key] != _as_the_dsl_writes(body)] == []


def test_bodies_without_exclude_are_todays_exactly():
    """Only `exclude` (calibration) meets the must_not difference: served bodies are unchanged."""
    built = cases()
    assert [key for key, body in RECORDED.items() if "exclude=0" in key and built[key] != body] == []


def test_bodies_survive_the_dsl_round_trip():
    """execute_sides reads bodies back into Searches for its MultiSearch: nothing may change on the way."""
    bodies = [body for value in cases().values()
              for body in (value.values() if set(value) <= {"lexical", "vector"} else [value])]
    assert len(bodies) > len(RECORDED)
    assert [body for body in bodies if Search.from_dict(body).to_dict() != body] == []


def test_the_query_dataclass_builds_what_the_old_signature_builds():
    query = RetrievalQuery(TOKENS, VECTOR, K, "花呗", True, ["推迟"], ["faq-1"])
    for mode in RETRIEVAL_MODES:
        assert search_request(mode, query, SETTINGS).to_dict() == build_request(
            mode, TOKENS, VECTOR, K, SETTINGS, "花呗", True, ["推迟"], ["faq-1"])
    assert {side: s.to_dict() for side, s in side_requests(query, SETTINGS).items()} == build_sides(
        TOKENS, VECTOR, K, SETTINGS, "花呗", True, ["推迟"], ["faq-1"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.size = 10  # type: ignore[misc]


def test_retrieve_builds_only_match_term_and_knn():
    text = inspect.getsource(retrieve)
    assert "query_string" not in text and "simple_query_string" not in text
    tokens, vector = ["title:x", "or", "*"], [0.1] * 512
    bodies = [build_request(mode, tokens, vector, 5, SETTINGS, "c\" OR *", True, ["alt"]) for mode in RETRIEVAL_MODES]
    bodies.append(build_sides(tokens, vector, 5, SETTINGS, "c", True, ["alt"]))
    for body in bodies:
        assert not SYNTAX_CLAUSES & set(keys(body)), body


def record() -> None:
    lines = [f"  {json.dumps(key, ensure_ascii=False)}: {json.dumps(body, ensure_ascii=False)}"
             for key, body in cases().items()]
    FIXTURE.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


if __name__ == "__main__":
    record()
