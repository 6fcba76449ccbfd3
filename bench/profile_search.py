"""Where a /v1/search request's CPU goes, in process (issue 11: profile before changing the path).

    .venv/bin/python bench/profile_search.py bench-atec-10k ../shared/data/faq-bench/atec/queries.jsonl [N]

Serves N searches (default 300) through the real Flask app (test client: no sockets, no gunicorn),
with the query log on, under cProfile, and prints the time per request in each part of the path:
the search stages, the request's JSON and metrics, the query log's queueing, and the rest; and how
many searches read the leader's pairs in both orders (decide_order_band).
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time
from dataclasses import replace
from pathlib import Path

from es_faq.api.app import create_app
from es_faq.config.load import load_settings

# Functions whose cumulative time is one part of the path (pstats keys: file, line, name).
PARTS = {"analyze": ("analyze.py", "analyze"), "embed": ("embed.py", "encode"),
         "request (dsl)": ("retrieve.py", "search_request"), "engine round trip": ("retrieve.py", "execute"),
         "cross-encoder": ("rerank.py", "score_ordered"), "decide": ("decide.py", "decide"),
         "result to JSON": ("pipeline.py", "as_dict"), "query log (queueing)": ("querylog.py", "log_search"),
         "metrics": ("metrics.py", "observe_stages"), "whole request": ("app.py", "wsgi_app")}


def main() -> None:
    alias, queries_path = sys.argv[1], Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    queries = [json.loads(line)["query"] for line in queries_path.read_text(encoding="utf-8").splitlines()][:n]
    settings = replace(load_settings(), index_alias=alias)
    app = create_app(settings)
    client = app.test_client()
    for query in queries[:20]:
        client.post("/v1/search", json={"query": query})
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    orders = []
    for query in queries:
        response = client.post("/v1/search", json={"query": query})
        assert response.status_code == 200
        orders.append(response.get_json()["decision"]["orders"])
    profile.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profile)
    rows = {}
    for (file, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for part, (wanted_file, wanted_name) in PARTS.items():
            if file.endswith(wanted_file) and name == wanted_name:
                rows[part] = rows.get(part, 0.0) + cumulative
    # How many searches read each pair in both orders (decide_order_band), one, or had no cross-encoder.
    print(json.dumps({"requests": len(queries), "decision_orders": {str(k): orders.count(k) for k in (1, 2, None)},
                      "wall_ms_per_request": round(wall / len(queries) * 1000, 2),
                      **{part: round(seconds / len(queries) * 1000, 2) for part, seconds in rows.items()}}))
    # Note: the Flask app's own __call__ is in flask/app.py; "whole request" is the WSGI app there.
    stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
