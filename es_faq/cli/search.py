"""`es-faq search`, `analyze`, and measuring search: `eval`, `eval-pairs`, `calibrate`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config.settings import SEARCH_MODES, Settings
from ..errors import DataError
from ..search.decide import DEFAULT_CONFIDENCE, DEFAULT_FEATURES, FEATURE_SETS, LEARNERS, NEAR_MISS_MAX, NO_MATCH_MAX
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
    from ..search.pipeline import Searcher

    result = Searcher(settings).search(query, k, mode, index=index, category=category, explain=debug)
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
@click.option("--judgements", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A person's judgements of (query, FAQ) pairs, JSON lines (bench/judgements/): a query judged "
                   "\"same\" as an FAQ counts it as relevant. The row says how many queries they relabelled.")
@pass_settings
def eval_cmd(settings: Settings, bench: Path, split: str, mode: str, limit: int | None, json_out: Path | None,
             curve_dir: Path | None, judgements: Path | None) -> None:
    """Index the bench (re-used while unchanged), run the split's queries, print one JSON row per mode:
    recall and MRR on paraphrases, and what the decision does to each kind of query."""
    from ..evaluation import calibrate as cal
    from ..evaluation.bench import ensure_bench_index, load_queries
    from ..evaluation.evaluate import evaluate
    from ..models.files import sha256_of
    from ..search.pipeline import Searcher

    searcher = Searcher(settings)
    queries = load_queries(bench, split, limit, judgements)
    alias = ensure_bench_index(searcher, bench)
    summaries = []
    for m in SEARCH_MODES if mode == "all" else (mode,):
        summary, rows = evaluate(searcher, bench, split, m, alias, queries, progress=True)
        if judgements:
            summary["judgements"] = {"file": str(judgements), "sha256": sha256_of(judgements),
                                     "relabelled": sum("judged" in q for q in queries)}
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
@click.option("--near-miss-max", default=NEAR_MISS_MAX, show_default=True, type=click.FloatRange(0, 1),
              help="Most near-miss queries that may be answered with the FAQ they only look like.")
@click.option("--no-match-max", default=NO_MATCH_MAX, show_default=True, type=click.FloatRange(0, 1),
              help="Most no-match queries that may be answered at all.")
@click.option("--confidence", default=DEFAULT_CONFIDENCE, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Hold each bound on this upper confidence bound of the dev rate (Clopper-Pearson, one-sided), so "
                   "that it also holds on new traffic; a small dev split then gets a stricter threshold. 0: on the "
                   "dev rates themselves.")
@click.option("--limit", type=int, default=None, help="Only the first N queries of each split.")
@click.option("--write", is_flag=True, help="Write the fit and thresholds to onnx_models/<rerank_model>/decision.json.")
@click.option("--features", default=",".join(DEFAULT_FEATURES), show_default=True,
              type=click.Choice(FEATURE_SETS), help="What the decision model sees (comma-separated).")
@click.option("--curve", "curve_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the curve over the answer threshold here (JSON and PNG).")
@click.option("--learner", type=click.Choice(LEARNERS), default="logistic", show_default=True,
              help="A logistic regression, or gradient-boosted trees (written as decision.onnx beside decision.json; "
                   "thresholds chosen on out-of-fold probabilities).")
@pass_settings
def calibrate(settings: Settings, benches: tuple[Path, ...], split: str, near_miss_max: float, no_match_max: float,
              confidence: float, limit: int | None, write: bool, features: str, curve_dir: Path | None,
              learner: str) -> None:
    """Fit the decision (P(right) from the cross-encoder's logit and margin) on dev splits and choose
    the thresholds: the most coverage within the false-answer bounds (JSON)."""
    from ..evaluation.calibrate import calibrate as fit_decision
    from ..search.pipeline import Searcher

    calibration, report = fit_decision(Searcher(settings), list(benches), split, tuple(features.split(",")),
                                       near_miss_max, no_match_max, limit, curve_dir, learner, confidence or None)
    for warning in report.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if write and report.get("warnings"):
        raise DataError("calibration not written: the shipped decision is left as it was (see the warning above)")
    if write:
        report["written"] = str(calibration.save(settings.rerank_model))
    _emit(report)
