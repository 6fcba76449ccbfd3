"""Which clean queries of a bench split the typo corrector changes (it should leave them alone).

    .venv/bin/python bench/typo_clean.py --bench ../shared/data/faq-bench/diac --split test --limit 1000

Uses the bench's index (as `es-faq eval` builds it) for the vocabulary; prints one JSON line per
changed query, then a summary line.
"""

import argparse
import json
import time
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.evaluation.bench import ensure_bench_index, load_queries
from es_faq.search.pipeline import Searcher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    searcher = Searcher(load_settings())
    alias = ensure_bench_index(searcher, args.bench)
    started = time.perf_counter()
    corrector = searcher.corrector(alias)
    built_s = time.perf_counter() - started
    rows = load_queries(args.bench, args.split, args.limit)
    changed = 0
    started = time.perf_counter()
    for row in rows:
        analysis = searcher.analyzer.analyze(row["query"], expand=True, corrector=corrector)
        if analysis.corrections:
            changed += 1
            print(json.dumps({"query": row["query"], "corrections": analysis.corrections}, ensure_ascii=False))
    per_query_ms = (time.perf_counter() - started) * 1000 / len(rows)
    print(json.dumps({"queries": len(rows), "changed": changed, "vocabulary": len(corrector or ()),
                      "corrector_ready_s": round(built_s, 2), "analyze_ms_per_query": round(per_query_ms, 2)}))


if __name__ == "__main__":
    main()
