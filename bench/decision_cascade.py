"""How much cross-encoder work does the decision need? (issue 11: a fast cross-encoder)

    .venv/bin/python bench/decision_cascade.py /tmp/diac-cascade-rows.json [SAMPLE]

Searches every diac dev and test query once (hybrid, no decision), then scores every question text
of the top 3 hits with the cross-encoder, one logit per text (rows cached in the given file). Each
variant below is then replayed offline: which pairs it would score, its features, a logistic fit
and thresholds chosen on dev (near-miss <= 5%, no-match <= 2%, as `es-faq calibrate`), and its
decision on test. Pairs per query is the cross-encoder's work. SAMPLE (default all) takes a seeded
sample of that many queries from each split.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from es_faq.config.load import load_settings
from es_faq.evaluation import calibrate as cal
from es_faq.evaluation.bench import ensure_bench_index, load_queries
from es_faq.search.decide import NO_RUNNER_UP_MARGIN
from es_faq.search.pipeline import Searcher
from es_faq.search.rerank import candidate_texts

HEAD = 3
REPORTED = ("coverage", "near_miss_false_answer_rate", "no_match_false_answer_rate", "answer_precision")


def collect(cache: Path, sample: int | None) -> dict[str, list[dict]]:
    if cache.exists():
        return json.loads(cache.read_text())
    settings = replace(load_settings(), decide_depth=0)
    bench = settings.bench_dir / "diac"
    searcher = Searcher(settings)
    index = ensure_bench_index(searcher, bench, progress=False)
    out = {}
    for split in ("dev", "test"):
        rows = []
        queries = load_queries(bench, split)
        if sample and sample < len(queries):
            queries = random.Random(7).sample(queries, sample)
        for query in tqdm(queries, desc=split):
            result = searcher.search(query["query"], cal.SUGGEST_DEPTH, "hybrid", index=index)
            gold = set(query["relevant"])
            hits = result.hits[:HEAD]
            texts = [candidate_texts(h) for h in hits]
            logits = searcher.reranker.score(result.analysis.text, [t for g in texts for t in g]).tolist()
            head, start = [], 0
            for hit, group in zip(hits, texts, strict=True):
                head.append({"faq_id": hit.faq_id, "score": hit.score, "logits": logits[start:start + len(group)]})
                start += len(group)
            top = hits[0].faq_id if hits else None
            rank = next((i for i, h in enumerate(result.hits, start=1) if h.faq_id in gold), None)
            rows.append({"kind": query.get("kind", "paraphrase"), "top": top, "right": rank == 1, "rank": rank,
                         "near_miss_hit": top in set(query.get("near_miss", ())),
                         "in_suggestions": rank is not None and rank <= cal.SUGGEST_DEPTH, "head": head})
        out[split] = rows
    cache.write_text(json.dumps(out))
    return out


def margin(values: list[float]) -> float:
    return min(values[0] - max(values[1:]), NO_RUNNER_UP_MARGIN) if len(values) > 1 else NO_RUNNER_UP_MARGIN


def variant(row: dict, depth: int, texts: int | None) -> tuple[dict, int] | None:
    """Features and pairs scored when the top `depth` hits are scored on their first `texts` texts."""
    head = row["head"]
    if not head:
        return None
    logits = [max(h["logits"][:texts] if texts else h["logits"]) for h in head[:depth]]
    pairs = sum(len(h["logits"][:texts] if texts else h["logits"]) for h in head[:depth])
    scores = [h["score"] for h in head]
    return {"pair_logit": logits[0], "margin": margin(logits) if depth > 1 else 0.0,
            "retrieval_score": scores[0], "retrieval_margin": margin(scores)}, pairs


def run(rows: dict[str, list[dict]], depth: int, texts: int | None, names: list[str]) -> dict:
    data = {}
    pairs = []
    for split, split_rows in rows.items():
        data[split] = []
        for row in split_rows:
            made = variant(row, depth, texts)
            if made:
                data[split].append({**row, "features": made[0]})
                pairs.append(made[1])
    fitted = cal.fitted(data["dev"], tuple(names), 0.05, 0.02)
    outcome = cal.outcomes(cal.with_probabilities(data["test"], fitted), fitted.answer_threshold,
                           fitted.suggest_threshold)
    return {"depth": depth, "texts": texts or "all", "features": names,
            "pairs_per_query": round(float(np.mean(pairs)), 2),
            "answer_threshold": fitted.answer_threshold, **{k: outcome[k] for k in REPORTED}}


def main() -> None:
    rows = collect(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
    full = ["pair_logit", "margin", "retrieval_score", "retrieval_margin"]
    lead = ["pair_logit", "retrieval_score", "retrieval_margin"]
    for depth, texts, names in ((3, None, full), (2, None, full), (1, None, lead), (3, 1, full), (3, 2, full),
                                (1, 1, lead), (1, 2, lead)):
        print(json.dumps(run(rows, depth, texts, names)), flush=True)


if __name__ == "__main__":
    main()
