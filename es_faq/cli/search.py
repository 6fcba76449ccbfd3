"""`es-faq search`, `analyze`, and measuring search: `eval`, `eval-pairs`, `calibrate`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import SEARCH_MODES, Settings
from ..search.decide import BASE_FEATURES, FEATURE_SETS
from .common import _emit, _store, pass_settings


@click.command()
@click.argument("query")
@pass_settings
def analyze(settings: Settings, query: str) -> None:
    """Show how a query is analysed: normalised text, rewrites, tokens, synonym expansions."""
    from ..search.analyze import Analyzer

    _emit(Analyzer(settings, _store(settings)).analyze(query, expand=True).as_dict())


@click.command()
@click.argument("query")
@click.option("-k", default=None, type=int, help="How many FAQs to return.")
@click.option("--mode", type=click.Choice(SEARCH_MODES), default=None, help="Default: the search_mode setting.")
@click.option("--index", default=None, help="Alias or index to search (default: ES_FAQ_INDEX_ALIAS).")
@click.option("--category", default=None)
@click.option("--debug", is_flag=True, help="Add the analysis and the exact Elasticsearch request.")
@pass_settings
def search(settings: Settings, query: str, k: int | None, mode: str | None, index: str | None,
           category: str | None, debug: bool) -> None:
    """Search the FAQs; prints JSON hits."""
    from ..errors import InvalidInput
    from ..search.pipeline import Searcher

    try:
        result = Searcher(settings).search(query, k, mode, index=index, category=category, explain=debug)
    except InvalidInput as exc:
        raise click.UsageError(exc.message) from None
    _emit(result.as_dict(debug=debug))


@click.command("eval")
@click.option("--bench", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True)
@click.option("--mode", type=click.Choice((*SEARCH_MODES, "all")), default="hybrid", show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N queries of the split.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the rows to this file (JSON lines).")
@click.option("--curve", "curve_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the decision's curve over the answer threshold here (JSON and PNG, one per mode).")
@pass_settings
def eval_cmd(settings: Settings, bench: Path, split: str, mode: str, limit: int | None, json_out: Path | None,
             curve_dir: Path | None) -> None:
    """Index the bench (re-used while unchanged), run the split's queries, print one JSON row per mode:
    recall and MRR on paraphrases, and what the decision does to each kind of query."""
    from ..evaluation import calibrate as cal
    from ..evaluation.evaluate import ensure_bench_index, evaluate, load_queries
    from ..search.pipeline import Searcher

    searcher = Searcher(settings)
    queries = load_queries(bench, split, limit)
    alias = ensure_bench_index(searcher, bench)
    summaries = []
    for m in SEARCH_MODES if mode == "all" else (mode,):
        summary, rows = evaluate(searcher, bench, split, m, alias, queries, progress=True)
        if curve_dir and "decision" in summary:
            chosen = {k: summary["decision"][k] for k in ("answer_threshold", "suggest_threshold")}
            title = f"{bench.resolve().name} {split}, mode {m}: the decision over the answer threshold"
            summary["curve"] = cal.write_curve(cal.curve(rows, chosen["suggest_threshold"]), chosen, title,
                                               curve_dir / f"decision-{bench.resolve().name}-{split}-{m}")
        summaries.append(summary)
        click.echo(json.dumps(summary, ensure_ascii=False))
    if json_out:
        json_out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in summaries))


@click.command("eval-pairs")
@click.option("--corpus", "corpora", multiple=True, help="A corpus under pairs_dir with a dev.tsv (repeatable; "
              "default: bq, afqmc, lcqmc, chip2019, oppo-xiaobu, pawsx-zh).")
@click.option("--model", default=None, help="A reranker model (default: the rerank_model setting).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Score a seeded sample of N dev pairs per corpus.")
@click.option("--hard-cases", type=click.IntRange(0), default=2000, show_default=True,
              help="Texts of the diac dev groups edited into hard cases, scored per category (0: none).")
@pass_settings
def eval_pairs_cmd(settings: Settings, corpora: tuple[str, ...], model: str | None, limit: int | None,
                   hard_cases: int) -> None:
    """The cross-encoder on labelled dev pairs: accuracy, F1 and ROC-AUC (percent), at a logit
    threshold chosen on training data; and per category on generated hard cases."""
    from ..train.pair_eval import CORPORA, evaluate_pairs

    _emit(evaluate_pairs(settings, corpora or CORPORA, model, limit, hard_sources=hard_cases))


@click.command()
@click.option("--bench", "benches", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A faq-bench directory (repeatable). Benches with query kinds set the false-answer bounds.")
@click.option("--split", default="dev", show_default=True)
@click.option("--near-miss-max", default=0.05, show_default=True, type=click.FloatRange(0, 1),
              help="Most near-miss queries that may be answered with the FAQ they only look like.")
@click.option("--no-match-max", default=0.02, show_default=True, type=click.FloatRange(0, 1),
              help="Most no-match queries that may be answered at all.")
@click.option("--limit", type=int, default=None, help="Only the first N queries of each split.")
@click.option("--write", is_flag=True, help="Write the fit and thresholds to onnx_models/<rerank_model>/decision.json.")
@click.option("--features", default=",".join(BASE_FEATURES), show_default=True,
              type=click.Choice(FEATURE_SETS), help="What the decision model sees (comma-separated).")
@click.option("--curve", "curve_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the curve over the answer threshold here (JSON and PNG).")
@pass_settings
def calibrate(settings: Settings, benches: tuple[Path, ...], split: str, near_miss_max: float, no_match_max: float,
              limit: int | None, write: bool, features: str, curve_dir: Path | None) -> None:
    """Fit the decision (P(right) from the cross-encoder's logit and margin) on dev splits and choose
    the thresholds: the most coverage within the false-answer bounds (JSON)."""
    from ..evaluation import calibrate as cal
    from ..evaluation.evaluate import ensure_bench_index, load_queries
    from ..search.decide import Calibration
    from ..search.pipeline import Searcher

    searcher = Searcher(settings)
    mode = settings.search_mode
    parts = {}
    for bench in benches:
        queries = load_queries(bench, split, limit)
        alias = ensure_bench_index(searcher, bench)
        rows = cal.collect(searcher, alias, queries, mode)
        if not any("kind" in q for q in queries):  # no no-match queries of its own: hide the gold FAQs
            rows += cal.collect(searcher, alias, queries, mode, held_out=True)
        parts[bench.resolve().name] = (any("kind" in q for q in queries), rows)
    every = [r for _, rows in parts.values() for r in rows]
    names = tuple(features.split(","))
    coef, intercept = cal.fit(every, names)
    bounded = [r for kinds, rows in parts.values() if kinds for r in rows] or every
    fitted = Calibration(names, coef, intercept, 0.5, 0.5, {})
    chosen = cal.choose(cal.with_probabilities(bounded, fitted), near_miss_max, no_match_max)
    retrieval_mode = "hybrid" if mode == "rerank" else mode
    calibration = Calibration(names, coef, intercept, chosen["answer_threshold"], chosen["suggest_threshold"],
                              {"benches": sorted(parts), "split": split, "retrieval_mode": retrieval_mode,
                               "model": settings.rerank_model, "embed_model": settings.embed_model,
                               "decide_depth": settings.decide_depth, "near_miss_max": near_miss_max,
                               "no_match_max": no_match_max})
    report: dict = {"calibration": {"features": names, "coef": coef, "intercept": intercept, **chosen},
                    "outcomes": {}}
    for name, (_, rows) in parts.items():
        scored = cal.with_probabilities(rows, calibration)
        report["outcomes"][name] = cal.outcomes(scored, chosen["answer_threshold"], chosen["suggest_threshold"])
        if curve_dir:
            title = f"{name} {split}: the decision over the answer threshold (calibrated on {', '.join(sorted(parts))})"
            points = cal.curve(scored, chosen["suggest_threshold"])
            report["outcomes"][name]["curve"] = cal.write_curve(points, chosen, title,
                                                                curve_dir / f"calibration-{name}-{split}")
    if write:
        report["written"] = str(calibration.save(settings.rerank_model))
    _emit(report)
