"""Kibana saved objects for the query log: a data view and a dashboard of Lens panels, as import NDJSON.

The objects follow the export format of Kibana 8.9 and later (one JSON object a line; Lens state
under `formBased`; the dashboard's panels reference their Lens objects by `panelRefName`), so
Stack Management > Saved objects > Import, or `POST /api/saved_objects/_import`, takes the file.
Ids derive from the query-log prefix: importing again with overwrite replaces the same objects.
Fields and panel filters (KQL) come from the query log's schema, es_faq/kb/querylog.py.
"""

from __future__ import annotations

import json
import uuid

from ..config.indices import querylog_pattern
from ..config.settings import Settings
from .querylog import DECISION, LATENCY_MS, NO_MATCH, NORMALIZED, SEARCH, TIMESTAMP

CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0"}
NAMESPACE = uuid.UUID("4f1f6a52-3c39-4b5e-9a54-0e5f0c2d9e14")  # es-faq's: stable ids per prefix
LATENCY_PERCENTILES = (50, 95, 99)


def _id(prefix: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{prefix}/{name}"))


def _saved(kind: str, object_id: str, attributes: dict, references: list[dict]) -> dict:
    return {"type": kind, "id": object_id, "attributes": attributes, "references": references,
            "coreMigrationVersion": CORE_MIGRATION_VERSION, "typeMigrationVersion": TYPE_MIGRATION_VERSION[kind],
            "managed": False}


def _date_column() -> dict:
    return {"label": TIMESTAMP, "dataType": "date", "operationType": "date_histogram", "sourceField": TIMESTAMP,
            "isBucketed": True, "scale": "interval", "params": {"interval": "auto", "includeEmptyRows": True}}


def _count_column(label: str) -> dict:
    return {"label": label, "customLabel": True, "dataType": "number", "operationType": "count",
            "sourceField": "___records___", "isBucketed": False, "scale": "ratio", "params": {"emptyAsNull": False}}


def _terms_column(field: str, label: str, size: int, order_by: str) -> dict:
    return {"label": label, "customLabel": True, "dataType": "string", "operationType": "terms",
            "sourceField": field, "isBucketed": True, "scale": "ordinal",
            "params": {"size": size, "orderBy": {"type": "column", "columnId": order_by},
                       "orderDirection": "desc", "otherBucket": False, "missingBucket": False}}


def _percentile_column(field: str, percentile: int) -> dict:
    return {"label": f"p{percentile} {field}", "customLabel": True, "dataType": "number",
            "operationType": "percentile", "sourceField": field, "isBucketed": False, "scale": "ratio",
            "params": {"percentile": percentile}}


def _lens(prefix: str, name: str, title: str, data_view: str, columns: dict[str, dict], visualization: dict,
          visualization_type: str, query: str = "") -> dict:
    layer = _id(prefix, f"{name}/layer")
    return _saved("lens", _id(prefix, name), {
        "title": title, "description": "", "visualizationType": visualization_type,
        "state": {"datasourceStates": {"formBased": {"layers": {layer: {
            "columns": columns, "columnOrder": list(columns), "incompleteColumns": {}}}}},
            "visualization": {**visualization, "layerId": layer} if visualization_type == "lnsDatatable"
            else {**visualization, "layers": [{**layer_spec, "layerId": layer}
                                              for layer_spec in visualization["layers"]]},
            "query": {"language": "kuery", "query": query}, "filters": [], "internalReferences": [],
            "adHocDataViews": {}}},
        [{"type": "index-pattern", "id": data_view, "name": f"indexpattern-datasource-layer-{layer}"}])


def _xy(series: str, x: str, accessors: list[str], split: str | None = None) -> dict:
    layer = {"layerType": "data", "seriesType": series, "xAccessor": x, "accessors": accessors}
    if split:
        layer["splitAccessor"] = split
    return {"preferredSeriesType": series, "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide", "layers": [layer]}


def saved_objects(settings: Settings) -> list[dict]:
    """The data view on `<query_log_prefix>-*`, four Lens panels, and the dashboard that holds them."""
    prefix = settings.query_log_prefix
    view = _id(prefix, "data-view")
    objects = [_saved("index-pattern", view, {"title": querylog_pattern(prefix), "name": "es-faq query log",
                                              "timeFieldName": TIMESTAMP}, [])]
    objects.append(_lens(prefix, "volume", "Searches over time", view,
                         {"x": _date_column(), "count": _count_column("searches")},
                         _xy("bar", "x", ["count"]), "lnsXY", query=SEARCH.kql()))
    objects.append(_lens(prefix, "decisions", "Decisions over time", view,
                         {"x": _date_column(), "decision": _terms_column(DECISION, "decision", 5, "count"),
                          "count": _count_column("searches")},
                         _xy("bar_stacked", "x", ["count"], split="decision"), "lnsXY"))
    objects.append(_lens(prefix, "unanswered", "Top unanswered queries (no_match or no hit)", view,
                         {"query": _terms_column(NORMALIZED, "query (normalized)", 20, "count"),
                          "count": _count_column("searches")},
                         {"columns": [{"columnId": "query"}, {"columnId": "count"}]}, "lnsDatatable",
                         query=NO_MATCH.kql()))  # as `es-faq report` counts no_match
    percentiles = {f"p{p}": _percentile_column(LATENCY_MS, p) for p in LATENCY_PERCENTILES}
    objects.append(_lens(prefix, "latency", "Search latency percentiles (ms)", view,
                         {"x": _date_column(), **percentiles}, _xy("line", "x", list(percentiles)), "lnsXY"))
    panels, references = [], []
    for n, lens in enumerate(objects[1:]):
        index = lens["id"]
        panels.append({"type": "lens", "panelIndex": index, "panelRefName": f"panel_{index}", "embeddableConfig": {},
                       "gridData": {"x": 24 * (n % 2), "y": 15 * (n // 2), "w": 24, "h": 15, "i": index}})
        references.append({"type": "lens", "id": lens["id"], "name": f"{index}:panel_{index}"})
    objects.append(_saved("dashboard", _id(prefix, "dashboard"), {
        "title": "es-faq: query log", "description": "Search volume, decisions, unanswered queries and latency "
                                                     f"from {querylog_pattern(prefix)} (es-faq kibana export)",
        "panelsJSON": json.dumps(panels), "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
        "timeRestore": True, "timeFrom": "now-7d", "timeTo": "now",
        "refreshInterval": {"pause": True, "value": 60000},
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"language": "kuery", "query": ""},
                                                                  "filter": []})}}, references))
    return objects


def saved_objects_ndjson(settings: Settings) -> str:
    """One saved object a line, as Kibana's import reads it."""
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in saved_objects(settings))
