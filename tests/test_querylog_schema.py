"""The query log's schema has one home, es_faq/kb/querylog.py: its field names are in the mapping, the
Kibana export's filters are the module's KQL, and the KQL and the query DSL of one condition select the
same documents on a real node.

No Kibana runs here, and this node has no KQL query (the integ-test distribution lacks x-pack-kql), so
the KQL is read as Kibana's @kbn/es-query translates this form of it (`field : "text"` a match_phrase,
`field : 5` a match, `field : *` an exists, `or` a bool should): query types the module's DSL does
not use, run against documents where each clause holds alone."""

from __future__ import annotations

import ast
import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

import es_faq
from es_faq.config.indices import querylog_index, querylog_pattern
from es_faq.config.load import load_settings
from es_faq.kb import querylog
from es_faq.kb.kibana import saved_objects
from es_faq.kb.querylog import FAILING, NO_MATCH, SEARCH, Condition
from tests.conftest import drop_query_log
from tests.test_kibana import _fields

PACKAGE = Path(es_faq.__file__).parent
MAPPED = _fields(querylog.template_body()["mappings"]["properties"])
FIELD_CONSTANTS = ("TIMESTAMP", "QUERY", "NORMALIZED", "DECISION", "HIT_COUNT", "HIT_FAQ_ID", "LATENCY_MS",
                   "FEEDBACK")
KQL_CLAUSE = re.compile(r'([\w@.]+) : (\*|"(?:[^"\\]|\\.)*"|[^\s"()]+)')

# id -> (decision, hit_count, feedback); None leaves the field out. Each clause of NO_MATCH holds alone
# in one document ("declined": hits, but the decide stage said no_match; "nothing": no hit, and a
# decision other than no_match, which the pipeline never writes but the condition must still count).
CASES = {"answered": ("answer", 3, None), "suggested": ("suggest", 5, None), "declined": ("no_match", 4, None),
         "empty": ("no_match", 0, None), "nothing": ("suggest", 0, None), "unhelpful": ("answer", 2, "unhelpful"),
         "feedback-alone": (None, None, "unhelpful")}
EXPECTED = {NO_MATCH: {"declined", "empty", "nothing"},
            SEARCH: set(CASES) - {"feedback-alone"},
            FAILING: {"declined", "empty", "nothing", "unhelpful", "feedback-alone"}}


def _kibana_reads(kql: str) -> dict:
    """The query Kibana sends for KQL of the form `field : value or field : value ...`."""
    clauses = []
    for part in kql.split(" or "):
        match = KQL_CLAUSE.fullmatch(part)
        assert match, f"not a `field : value` clause: {part!r}"
        field, value = match.groups()
        if value == "*":
            clauses.append({"exists": {"field": field}})
        elif value.startswith('"'):
            clauses.append({"match_phrase": {field: json.loads(value)}})
        else:
            clauses.append({"match": {field: value}})
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def test_every_field_the_readers_name_is_mapped():
    for name in FIELD_CONSTANTS:
        assert getattr(querylog, name) in MAPPED, name
    assert MAPPED[querylog.TIMESTAMP] == "date" and MAPPED[querylog.HIT_COUNT] == "integer"


def test_no_match_reads_as_the_docs_say():
    # docs/api.md ("Kibana", "es-faq report") quotes this filter.
    assert NO_MATCH.kql() == 'decision : "no_match" or hit_count : 0'
    assert NO_MATCH.dsl() == {"bool": {"should": [{"term": {"decision": "no_match"}}, {"term": {"hit_count": 0}}],
                                       "minimum_should_match": 1}}
    assert SEARCH.kql() == "hit_count : *" and SEARCH.dsl() == {"exists": {"field": "hit_count"}}


def test_a_quoted_kql_value_is_escaped():
    assert Condition((("query", 'say "hi" \\ bye'),)).kql() == 'query : "say \\"hi\\" \\\\ bye"'
    assert _kibana_reads(Condition((("query", 'say "hi" \\ bye'),)).kql())["bool"]["should"] == [
        {"match_phrase": {"query": 'say "hi" \\ bye'}}]


def test_the_kibana_panels_filter_with_the_module_s_kql():
    lens = {o["attributes"]["title"]: o["attributes"]["state"]["query"] for o in saved_objects(load_settings())
            if o["type"] == "lens"}
    assert lens["Top unanswered queries (no_match or no hit)"] == {"language": "kuery", "query": NO_MATCH.kql()}
    assert lens["Searches over time"] == {"language": "kuery", "query": SEARCH.kql()}


def test_only_the_schema_module_names_the_mapping_file_and_the_filtered_fields():
    owned = {"querylog.json", querylog.HIT_COUNT, querylog.HIT_FAQ_ID}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "querylog.py" and path.parent.name == "kb":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    any(name in node.value for name in owned):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert not found, "the query log's schema is es_faq/kb/querylog.py's:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def cases(es):
    """The documents of CASES in one daily index made from the module's template (strict mappings)."""
    prefix = f"test-qlschema-{uuid.uuid4().hex[:8]}"
    querylog.put_template(es, prefix)
    now = datetime.now(timezone.utc)
    index = querylog_index(prefix, now)
    for doc_id, (decision, hit_count, feedback) in CASES.items():
        doc: dict = {"request_id": doc_id}
        if hit_count is not None:
            doc.update({querylog.TIMESTAMP: now.isoformat(), querylog.QUERY: doc_id, querylog.NORMALIZED: doc_id,
                        querylog.DECISION: decision, querylog.HIT_COUNT: hit_count,
                        "hits": [{"faq_id": f"demo-{n:03d}", "score": 1.0} for n in range(hit_count)]})
        if feedback:
            doc.update({querylog.FEEDBACK: feedback, "feedback_faq_id": "demo-001", "feedback_at": now.isoformat()})
        es.index(index=index, id=doc_id, document=doc)
    es.indices.refresh(index=index)
    yield querylog_pattern(prefix)
    drop_query_log(es, prefix)


def _ids(es, index: str, query: dict) -> set[str]:
    return {h["_id"] for h in es.search(index=index, query=query, size=100)["hits"]["hits"]}


@pytest.mark.parametrize("name", ["NO_MATCH", "SEARCH", "FAILING"])
def test_the_kql_and_the_dsl_select_the_same_documents(es, cases, name):
    condition = getattr(querylog, name)
    selected = _ids(es, cases, condition.dsl())
    assert selected == EXPECTED[condition]
    assert _ids(es, cases, _kibana_reads(condition.kql())) == selected


def test_the_readers_count_searches_only(es, cases):
    assert _ids(es, cases, querylog.searches()) == EXPECTED[SEARCH]
    assert _ids(es, cases, querylog.searches("1d")) == EXPECTED[SEARCH]
    failing = {"bool": {"filter": [querylog.searches("1d"), FAILING.dsl()]}}  # what `es-faq report` clusters
    assert _ids(es, cases, failing) == EXPECTED[FAILING] - {"feedback-alone"}
