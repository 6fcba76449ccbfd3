"""Would the decision answer more of the demo's paraphrases if the cross-encoder read every question of the
leading FAQ? For each paraphrase the search leaves unanswered with its FAQ first: the leader's best logit over
the texts the decision reads (its standard question and the questions the search matched) against the best over
every question of that FAQ, both with the pairs read both ways.

    python bench/demo_texts.py demo-check
"""

import json
import statistics
import sys
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.search.pipeline import Searcher
from es_faq.search.rerank import DECISION_SIDES, Reranker, candidate_texts

DEMO = Path(__file__).resolve().parents[1] / "demo"


def main() -> None:
    alias = sys.argv[1]
    settings = load_settings()
    searcher = Searcher(settings)
    reranker = Reranker(settings.replace(rerank_both_orders=True), settings.rerank_model)
    faqs = {f["id"]: f for f in map(json.loads, (DEMO / "faqs.jsonl").open(encoding="utf-8"))}
    gains = []
    for row in map(json.loads, (DEMO / "queries.jsonl").open(encoding="utf-8")):
        if row.get("kind", "paraphrase") != "paraphrase":
            continue
        result = searcher.search(row["query"], 5, index=alias)
        if result.decision.action == "answer" or result.hits[0].faq_id not in row["relevant"]:
            continue
        faq = faqs[result.hits[0].faq_id]
        texts = [faq["question"], *faq.get("similar_questions", [])]
        # the query as the search hands it to the cross-encoder: normalised, filler dropped, rewritten
        text = searcher.analyzer.analyze(row["query"], expand=True, corrector=searcher.corrector(alias)).text
        logits = reranker.score(text, texts)
        read_texts = candidate_texts(result.hits[0], settings.rerank_texts, DECISION_SIDES)
        read, best = float(reranker.score(text, read_texts).max()), float(logits.max())
        gains.append(best - read)
        print(json.dumps({"query": row["query"], "action": result.decision.action,
                          "probability": round(result.decision.probability, 3), "logit_read": round(read, 2),
                          "logit_best_of_all": round(best, 2), "best_text": texts[int(logits.argmax())]},
                         ensure_ascii=False))
    print(json.dumps({"unanswered_with_faq_first": len(gains), "median_gain": round(statistics.median(gains), 2),
                      "gain_over_0.3": sum(g > 0.3 for g in gains)}))


if __name__ == "__main__":
    main()
