"""The decision's ablation: each cross-encoder with and without the difference features, and with and without the
answer veto (answer_veto), fitted and thresholded on diac dev (bounds 5% near-miss / 2% no-match false answers on
the dev rates: `es-faq calibrate --confidence 0`), measured on diac test. The embedder is the embed_model setting
(ES_FAQ_EMBED_MODEL).

    python bench/decision_ablation.py --model reranker-zh --model reranker-zh2 [--out bench/results/decision_ablation]

Each (model, split) is searched once (hybrid, the shipped decide_depth) and its rows cached as JSON lines
in --out; every feature set is then fitted on the cached dev rows, so adding a variant costs no search.
`--fit-bench bq` adds a variant fitted on diac dev plus bq dev (bq's queries also run with their gold FAQs
hidden, as `es-faq calibrate` does), thresholds still chosen on diac."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.evaluation import calibrate as cal
from es_faq.evaluation.bench import ensure_bench_index, load_queries
from es_faq.search import differ
from es_faq.search.decide import BASE_FEATURES, DEFAULT_FEATURES, VECTOR_FEATURES
from es_faq.search.pipeline import Searcher

VARIANTS = {"retrieval + cross-encoder": BASE_FEATURES, "+ differences": BASE_FEATURES + differ.FEATURES,
            # The calibration's default: the embedder's verdict (vector score and margin) in, the leader's
            # retrieval score (whose scale follows the knowledge base) out.
            "default: cross-encoder + vector + retrieval margin": DEFAULT_FEATURES,
            "cross-encoder + retrieval margin": ("pair_logit", "margin", "retrieval_margin"),
            "cross-encoder + vector": ("pair_logit", "margin", *VECTOR_FEATURES),
            "retrieval + cross-encoder + vector": BASE_FEATURES + VECTOR_FEATURES,
            # What the cross-encoder's work buys: the leader's logit alone is what decide_depth 1 computes
            # (1 candidate's texts instead of 3 candidates'), and no cross-encoder at all (decide_depth 0).
            "leader alone (decide_depth 1)": ("pair_logit", "retrieval_score", "retrieval_margin"),
            "retrieval alone (no cross-encoder)": ("retrieval_score", "retrieval_margin")}


def rows_of(searcher: Searcher, bench: Path, split: str, out: Path, held_out: bool = False) -> list[dict]:
    settings = searcher.settings
    path = out / (f"rows-{settings.rerank_model}-{settings.embed_model}-{bench.name}-{split}"
                  f"{'-held-out' if held_out else ''}.jsonl")
    if path.exists():
        return [json.loads(line) for line in path.open(encoding="utf-8")]
    alias = ensure_bench_index(searcher, bench)
    rows = cal.collect(searcher, alias, load_queries(bench, split), "hybrid", held_out=held_out)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def measure(model: str, name: str, names: tuple[str, ...], dev: list[dict], test: list[dict],
            more: list[dict]) -> dict:
    """One variant: fitted on dev (+ more), thresholds chosen on diac dev, measured on diac test."""
    fitted = cal.fitted(dev + more, names, 0.05, 0.02, bounded=dev)
    chosen = {"answer_threshold": fitted.answer_threshold, "suggest_threshold": fitted.suggest_threshold}
    answer, suggest = chosen["answer_threshold"], chosen["suggest_threshold"]
    on_test = cal.outcomes(cal.with_probabilities(test, fitted), answer, suggest)
    on_dev = cal.outcomes(cal.with_probabilities(dev, fitted), answer, suggest)
    paraphrases = [r for r in test if r["kind"] == "paraphrase"]
    return {"model": model, "features": name, **chosen, "dev_coverage": on_dev["coverage"],
            "test": {k: on_test[k] for k in ("coverage", "wrong_faq_rate", "near_miss_false_answer_rate",
                                             "no_match_false_answer_rate", "answer_precision")},
            "test_R@1": round(sum(r["rank"] == 1 for r in paraphrases) / len(paraphrases), 4),
            "test_near_miss_by_difference": on_test["near_miss_by_difference"],
            "coef": dict(zip(names, (round(c, 4) for c in fitted.coef), strict=True)),
            "intercept": round(fitted.intercept, 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--bench-dir", type=Path, default=None)
    parser.add_argument("--fit-bench", action="append", default=[], help="Another bench whose dev rows join the fit.")
    parser.add_argument("--out", type=Path, default=Path("bench/results/decision_ablation"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = []
    for model in args.model:
        # Every pair in both orders (as `es-faq calibrate` fits): bench/order_band.py replays the shortcut.
        settings = load_settings().replace(rerank_model=model, decide_order_band=1.0)
        bench_dir = args.bench_dir or settings.bench_dir
        searcher = Searcher(settings)
        diac = bench_dir / "diac"
        dev, test = rows_of(searcher, diac, "dev", args.out), rows_of(searcher, diac, "test", args.out)
        extra = [r for name in args.fit_bench for held in (False, True)
                 for r in rows_of(searcher, bench_dir / name, "dev", args.out, held)]
        variants = [(name, names, []) for name, names in VARIANTS.items()]
        if extra:
            variants.append((f"+ differences, fitted on diac+{'+'.join(args.fit_bench)}", VARIANTS["+ differences"],
                             extra))
        for name, names, more in variants:
            for veto in (True, False):
                # With the shipped answer_veto (rows record whether it stops them) and without it.
                rows = [dev, test, more] if veto else [[{**r, "vetoed": False} for r in p] for p in (dev, test, more)]
                row = measure(model, name if veto else f"{name}, no veto", names, *rows)
                print(json.dumps(row, ensure_ascii=False), flush=True)
                report.append(row)
    (args.out / "ablation.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
