"""Which decision features? 2-fold cross-validation on diac dev (coverage at near-miss <= 5%, no-match <= 2%).

    python bench/decision_features.py /tmp/diac-dev-rows.json

Searches every diac dev query once with the default search (rows cached in the given file), then
for each feature set fits the logistic regression and picks the threshold on one half, and
reports the decision's rates on the other half (both ways round).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np

from es_faq.config.load import load_settings
from es_faq.evaluation import calibrate as cal
from es_faq.evaluation.bench import ensure_bench_index, load_queries
from es_faq.search.pipeline import Searcher

SETS = {"cross-encoder": ["pair_logit", "margin"], "cross-encoder+top": ["pair_logit", "margin", "retrieval_score"],
        "all": ["pair_logit", "margin", "retrieval_score", "retrieval_margin"],
        "retrieval": ["retrieval_score", "retrieval_margin"]}
REPORTED = ("coverage", "near_miss_false_answer_rate", "no_match_false_answer_rate", "answer_precision")


def rows_of(cache: Path) -> list[dict]:
    if not cache.exists():
        settings = load_settings()
        bench = settings.bench_dir / "diac"
        searcher = Searcher(settings)
        index = ensure_bench_index(searcher, bench, progress=False)
        cache.write_text(json.dumps(cal.collect(searcher, index, load_queries(bench, "dev"), "hybrid", progress=False)))
    return json.loads(cache.read_text())


def main() -> None:
    rows = [r for r in rows_of(Path(sys.argv[1])) if r["features"]]
    random.Random(3).shuffle(rows)
    half = len(rows) // 2
    for name, names in SETS.items():
        folds = []
        for fit_on, measure_on in ((rows[:half], rows[half:]), (rows[half:], rows[:half])):
            fitted = cal.fitted(fit_on, tuple(names), 0.05, 0.02)
            outcome = cal.outcomes(cal.with_probabilities(measure_on, fitted), fitted.answer_threshold,
                                   fitted.suggest_threshold)
            folds.append({k: outcome[k] for k in REPORTED} | {"answer_threshold": fitted.answer_threshold})
        print(name, json.dumps(folds))
    paraphrases = [r for r in rows if r["kind"] == "paraphrase"]
    print("paraphrases", len(paraphrases), "R@1", round(float(np.mean([r["right"] for r in paraphrases])), 4))


if __name__ == "__main__":
    main()
