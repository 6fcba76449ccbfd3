"""A new worker's first searches: build the app as a gunicorn worker does (create_app), then time its first two
searches in process. Each run is a fresh process.

- `before`: the app built as before 2026-12-04's thirteenth session: the first search reads jieba's dictionary and
  IDF table (the differ) and builds the index's typo corrector itself;
- `differ`: as in the thirteenth session: `differ.load()` at start, the typo corrector still in the first search;
- `after`: both at start (the typo corrector since the fourteenth session).

    ES_FAQ_INDEX_ALIAS=bench-atec-10k ES_FAQ_QUERY_LOG_ENABLED=false python bench/first_search.py before|differ|after
"""

import os
import sys
import time

from es_faq.api import app
from es_faq.search import differ

if sys.argv[1:] not in (["before"], ["differ"], ["after"]):
    raise SystemExit("usage: first_search.py before|differ|after")
if sys.argv[1] == "before":
    differ.load = lambda: None  # noqa: E731  the app as it was built before the thirteenth session
if sys.argv[1] in ("before", "differ"):
    app._build_corrector = lambda searcher: None  # noqa: E731  as it was built before the fourteenth
create_app = app.create_app

started = time.perf_counter()
client = create_app().test_client()
built = time.perf_counter() - started
searches = []
for query in ["花呗怎么延期还款", "借呗怎么提前还款"]:
    started = time.perf_counter()
    timings = client.post("/v1/search", json={"query": query, "k": 10}).get_json()["timings_ms"]
    searches.append({"ms": round((time.perf_counter() - started) * 1000),
                     **{stage: round(timings[stage]) for stage in ("analyze", "decide")}})
print({"app": sys.argv[1], "alias": os.environ.get("ES_FAQ_INDEX_ALIAS"), "load_at_start": os.getloadavg()[0],
       "app_built_s": round(built, 2), "searches": searches}, flush=True)
