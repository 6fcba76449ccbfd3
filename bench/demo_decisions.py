"""The demo's decisions with the current settings, counted as tests/test_rerank.py counts them: paraphrases
answered with their FAQ, near-misses answered (with any FAQ, and with the FAQ they imitate), paraphrases
answered with their FAQ hidden. The demo is a shop's customer service, not a bench the decision was fitted
on: it shows how a calibration carries to another knowledge base.

    es-faq index load demo/faqs.jsonl --alias demo-check && python bench/demo_decisions.py demo-check
"""

import json
import sys
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.search.pipeline import Searcher

QUERIES = Path(__file__).resolve().parents[1] / "demo" / "queries.jsonl"


def main() -> None:
    alias = sys.argv[1]
    searcher = Searcher(load_settings())
    rows = [json.loads(line) for line in QUERIES.open(encoding="utf-8")]
    paraphrases = [r for r in rows if r.get("kind", "paraphrase") == "paraphrase"]
    near = [r for r in rows if r.get("kind") == "near_miss"]

    def answers(query: str, faqs: list[str], exclude: tuple[str, ...] = ()) -> bool:
        result = searcher.search(query, 5, index=alias, exclude=exclude)
        return result.decision.action == "answer" and (not faqs or result.hits[0].faq_id in faqs)

    answered = [r["query"] for r in paraphrases if answers(r["query"], r["relevant"])]
    print(json.dumps({"paraphrases": len(paraphrases), "answered": len(answered),
                      "near_misses": len(near),
                      # No FAQ answers a near-miss: any answer is false; those with the FAQ it imitates apart.
                      "near_misses_answered": [r["query"] for r in near if answers(r["query"], [])],
                      "near_misses_answered_with_the_faq_they_imitate": [r["query"] for r in near
                                                                         if answers(r["query"], r["near_miss"])],
                      "answered_with_gold_hidden": [r["query"] for r in paraphrases
                                                    if answers(r["query"], [], tuple(r["relevant"]))]},
                     ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
