"""`es-faq kibana export`: the saved objects checked against Kibana's import format and the query-log mapping.

No Kibana runs here, so the checks are structural: what Kibana's import reads (one object a line, the
keys of each type, references that resolve inside the file) and what Lens would query (fields that
exist in mappings/querylog.json, with a type the operation takes)."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from es_faq.cli import cli
from es_faq.config.load import load_settings
from es_faq.kb.kibana import saved_objects, saved_objects_ndjson
from es_faq.kb.querylog import template_body

REQUIRED = {"index-pattern": {"title", "timeFieldName"},
            "lens": {"title", "visualizationType", "state"},
            "dashboard": {"title", "panelsJSON", "optionsJSON", "kibanaSavedObjectMeta"}}
# What each Lens operation reads: the Elasticsearch field types it takes.
OPERATION_TYPES = {"date_histogram": {"date"}, "terms": {"keyword"}, "percentile": {"float", "integer"},
                   "count": None}
VISUALIZATIONS = {"lnsXY", "lnsDatatable", "lnsMetric", "lnsPie"}


def _fields(properties: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for name, spec in properties.items():
        if "properties" in spec:
            out.update(_fields(spec["properties"], f"{prefix}{name}."))
        if "type" in spec and spec["type"] != "object":
            out[f"{prefix}{name}"] = spec["type"]
    return out


MAPPING = _fields(template_body()["mappings"]["properties"])


def _export(settings=None) -> list[dict]:
    text = saved_objects_ndjson(settings or load_settings())
    assert text.endswith("\n") and "\n\n" not in text
    return [json.loads(line) for line in text.splitlines()]


def test_every_line_is_a_saved_object_with_its_required_keys():
    objects = _export()
    assert [o["type"] for o in objects] == ["index-pattern", "lens", "lens", "lens", "lens", "dashboard"]
    assert len({o["id"] for o in objects}) == len(objects)
    for obj in objects:
        assert {"type", "id", "attributes", "references", "coreMigrationVersion", "typeMigrationVersion"} <= set(obj)
        assert REQUIRED[obj["type"]] <= set(obj["attributes"]), obj["type"]
        assert all(set(ref) == {"type", "id", "name"} for ref in obj["references"])


def test_the_data_view_is_on_the_query_log_with_its_time_field():
    view = _export()[0]["attributes"]
    settings = load_settings()
    assert view["title"] == f"{settings.query_log_prefix}-*"
    assert MAPPING[view["timeFieldName"]] == "date"


def test_every_reference_resolves_to_an_object_in_the_file():
    objects = _export()
    by_key = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_key, (obj["type"], ref)


def test_lens_layers_columns_and_fields_match_the_query_log_mapping():
    objects = _export()
    view = objects[0]
    for lens in (o for o in objects if o["type"] == "lens"):
        attrs = lens["attributes"]
        assert attrs["visualizationType"] in VISUALIZATIONS
        layers = attrs["state"]["datasourceStates"]["formBased"]["layers"]
        refs = {r["name"]: r for r in lens["references"]}
        for layer_id, layer in layers.items():
            assert refs[f"indexpattern-datasource-layer-{layer_id}"]["id"] == view["id"]
            assert layer["columnOrder"] == list(layer["columns"])
            for column in layer["columns"].values():
                allowed = OPERATION_TYPES[column["operationType"]]
                if allowed is None:
                    assert column["sourceField"] == "___records___"
                else:
                    assert MAPPING.get(column["sourceField"]) in allowed, column
            for column in layer["columns"].values():
                order = column.get("params", {}).get("orderBy", {})
                assert order.get("type") != "column" or order["columnId"] in layer["columns"]
        visualization = attrs["state"]["visualization"]
        columns = {c for layer in layers.values() for c in layer["columns"]}
        if attrs["visualizationType"] == "lnsXY":
            for layer in visualization["layers"]:
                assert layer["layerId"] in layers
                used = [layer["xAccessor"], *layer["accessors"], *([layer["splitAccessor"]] if "splitAccessor" in
                                                                     layer else [])]
                assert set(used) <= columns
        else:
            assert visualization["layerId"] in layers
            assert {c["columnId"] for c in visualization["columns"]} <= columns
        # Field names in the KQL filter exist too.
        for field in re.findall(r"([\w@.]+)\s*:", attrs["state"]["query"]["query"]):
            assert field in MAPPING, field


def test_the_dashboard_panels_reference_the_lens_objects():
    objects = _export()
    dashboard = objects[-1]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r for r in dashboard["references"]}
    lens_ids = {o["id"] for o in objects if o["type"] == "lens"}
    assert len(panels) == len(lens_ids) == 4
    for panel in panels:
        ref = refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]
        assert ref["type"] == panel["type"] == "lens" and ref["id"] in lens_ids
        grid = panel["gridData"]
        assert {"x", "y", "w", "h", "i"} <= set(grid) and grid["x"] + grid["w"] <= 48
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "lens"}
    for wanted in ("Searches over time", "Decisions over time", "Top unanswered", "latency percentiles"):
        assert any(wanted in t for t in titles), wanted
    json.loads(dashboard["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


def test_ids_are_stable_and_follow_the_query_log_prefix():
    settings = load_settings()
    assert saved_objects(settings) == saved_objects(settings)
    other = saved_objects(settings.replace(query_log_prefix="shop-querylog"))
    assert other[0]["attributes"]["title"] == "shop-querylog-*"
    assert not {o["id"] for o in other} & {o["id"] for o in saved_objects(settings)}


def test_cli_writes_the_file_or_standard_output(tmp_path):
    out = tmp_path / "es-faq.ndjson"
    result = CliRunner().invoke(cli, ["kibana", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == saved_objects_ndjson(load_settings())
    printed = CliRunner().invoke(cli, ["kibana", "export"])
    assert printed.exit_code == 0 and printed.output == out.read_text(encoding="utf-8")
