"""How many searches read the leader's pairs in both orders (`decision.orders` 2) with the current settings:
the share that decide_order_band sends to a second cross-encoder run.

    ES_FAQ_QUERY_LOG_ENABLED=false ES_FAQ_DECIDE_ORDER_BAND=0.05 \
        python bench/reverse_reads.py bench-atec-10k /tmp/atec-10k/queries.jsonl     # its first 500 queries
"""

import json
import sys

from es_faq.config.load import load_settings
from es_faq.search.pipeline import Searcher


def main() -> None:
    alias, path = sys.argv[1], sys.argv[2]
    searcher = Searcher(load_settings())
    queries = [json.loads(line)["query"] for line in open(path, encoding="utf-8")][:500]
    orders = [searcher.search(q, 10, index=alias).decision.orders for q in queries]
    print(json.dumps({"band": searcher.settings.decide_order_band, "queries": len(queries),
                      "reverse_read": round(sum(o == 2 for o in orders) / len(queries), 3)}))


if __name__ == "__main__":
    main()
