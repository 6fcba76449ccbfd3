"""A knowledge base of N FAQs cut from a faq-bench, with the queries whose gold FAQ it kept.

    python bench/sample_bench.py ../shared/data/faq-bench/atec 10000 /tmp/atec-10k

For latency at a given knowledge-base size (docs/benchmarks.md): the first N FAQs of faqs.jsonl
(the order the bench ships in), and every query whose relevant FAQs are all among them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("size", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    kept: set[str] = set()
    with (args.bench / "faqs.jsonl").open(encoding="utf-8") as src, \
            (args.out / "faqs.jsonl").open("w", encoding="utf-8") as dst:
        for line in src:
            if len(kept) == args.size:
                break
            kept.add(json.loads(line)["id"])
            dst.write(line)
    queries = 0
    with (args.bench / "queries.jsonl").open(encoding="utf-8") as src, \
            (args.out / "queries.jsonl").open("w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            if row["relevant"] and set(row["relevant"]) <= kept:
                dst.write(line)
                queries += 1
    print(json.dumps({"faqs": len(kept), "queries": queries, "out": str(args.out)}))


if __name__ == "__main__":
    main()
