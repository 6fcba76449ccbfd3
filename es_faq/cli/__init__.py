"""The `es-faq` command line: a thin shell over the library."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
from elasticsearch import ApiError, TransportError

from . import engine as engine_mod
from . import index as index_mod
from . import models as models_mod
from .config import SEARCH_MODES, Settings, load_settings
from .decide import FEATURE_SETS, FEATURES
from .dictionary import KINDS
from .errors import EsFaqError
from .es import make_client, unreachable


def _emit(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """es-faq: Chinese FAQ retrieval on Elasticsearch."""
    ctx.obj = load_settings()


pass_settings = click.make_pass_decorator(Settings)


# --- engine -----------------------------------------------------------------------------------------
@cli.group()
def engine() -> None:
    """A local Elasticsearch (one node, or a cluster on loopback) for development and tests."""


@engine.command("up")
@click.option("--nodes", type=click.IntRange(1, 9), default=None,
              help="Nodes of the local cluster (default: one per URL in ES_FAQ_ES_URL).")
@pass_settings
def engine_up(settings: Settings, nodes: int | None) -> None:
    """Provision (first time) and start the nodes that do not run; wait until every primary is assigned."""
    _emit(engine_mod.up(settings, echo=lambda m: click.echo(m, err=True), nodes=nodes))


@engine.command("down")
@click.option("--node", type=click.IntRange(1, 9), default=None, help="Stop only this node (1, 2, ...).")
@pass_settings
def engine_down(settings: Settings, node: int | None) -> None:
    """Stop the nodes this tool started (all of them, or --node N)."""
    stopped = engine_mod.down(settings, node=node)
    click.echo(f"stopped {stopped} node{'s' if stopped != 1 else ''}" if stopped else "not running")


@engine.command("status")
@pass_settings
def engine_status(settings: Settings) -> None:
    """URL, version and health of the cluster at ES_FAQ_ES_URL."""
    _emit(engine_mod.status(settings))


# --- models -----------------------------------------------------------------------------------------
@cli.group()
def models() -> None:
    """ONNX models: provision, inspect, export."""


@models.command("pull")
@click.argument("names", nargs=-1)
@pass_settings
def models_pull(settings: Settings, names: tuple[str, ...]) -> None:
    """Fetch models (default: the embedding model, and the cross-encoder when searches decide or
    rerank with it) into the cache, checking sha256.

    A trained model comes from onnx_models/ when shipped there; a pull never trains one (that is
    `es-faq train`, docs/training.md)."""
    defaults = (settings.embed_model, *((settings.rerank_model,) if settings.uses_reranker else ()))
    for name in names or defaults:
        path = models_mod.pull(models_mod.Manifest.load(name), settings)
        click.echo(f"{name}: ready in {path}")


@models.command("list")
@pass_settings
def models_list(settings: Settings) -> None:
    """Known models, whether their files are in the cache, and the execution provider."""
    providers = models_mod.execution_providers()
    rows = []
    for manifest in models_mod.list_manifests():
        problems = models_mod.verify(manifest, settings)
        rows.append({"name": manifest.name, "task": manifest.data.get("task"), "dims": manifest.data.get("dims"),
                     "quantization": manifest.data.get("quantization"), "ready": not problems,
                     "provider": providers[0], "problems": problems})
    _emit(rows)


@models.command("ship")
@click.argument("name")
@pass_settings
def models_ship(settings: Settings, name: str) -> None:
    """Put a trained model's INT8 file into onnx_models/NAME/ with pinned sha256 (to commit)."""
    click.echo(f"{name}: shipped in {models_mod.ship(models_mod.Manifest.load(name), settings)}")


@models.command("quantize")
@click.argument("source")
@click.argument("name")
@click.option("--calibration", "calibration", multiple=True, required=True, type=click.Path(path_type=Path),
              help="FAQ JSONL whose questions set the activation ranges (repeatable).")
@click.option("--size", default=256, show_default=True,
              help="Calibration texts (a seeded sample; percentile ranges keep every activation in memory: "
                   "about 17 MB a text).")
@click.option("--seed", default=13, show_default=True)
@pass_settings
def models_quantize(settings: Settings, source: str, name: str, calibration: tuple[Path, ...], size: int,
                    seed: int) -> None:
    """Ship a static-INT8 copy of the fp32 embedder SOURCE as onnx_models/NAME/ (batch-independent vectors)."""
    from .quantize import derive_static

    click.echo(f"{name}: shipped in {derive_static(settings, source, name, calibration, size, seed)}")


@models.command("export")
@click.argument("model_id")
@click.option("--int8", is_flag=True, help="Also quantize to INT8 (dynamic, AVX2).")
@click.option("--output", type=click.Path(path_type=Path), default=None)
@pass_settings
def models_export(settings: Settings, model_id: str, int8: bool, output: Path | None) -> None:
    """Export a Hugging Face model (hub id or local directory) to ONNX with optimum."""
    from .export import export

    target = output or settings.models_path / model_id.rstrip("/").split("/")[-1]
    click.echo(f"exported to {export(model_id, target, int8)}")


# --- train ------------------------------------------------------------------------------------------
@cli.group()
def train() -> None:
    """Fine-tune the reranker or the embedder on a faq-bench directory (needs the [train] extra)."""


def _train_options(fn):
    options = [
        click.option("--bench", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="A faq-bench directory: its train split and knowledge base."),
        click.option("--name", default=None, help="Model name (default: reranker-<bench> / embedder-<bench>)."),
        click.option("--epochs", type=click.IntRange(1), default=None),
        click.option("--batch-size", type=click.IntRange(1), default=None),
        click.option("--lr", type=float, default=None),
        click.option("--limit", type=click.IntRange(1), default=None,
                     help="Train on this many sampled queries only (a quick CPU run)."),
        click.option("--seed", type=int, default=None),
    ]
    for option in reversed(options):
        fn = option(fn)
    return pass_settings(fn)


@train.command("reranker")
@click.argument("name", default="reranker-zh")
@click.option("--corpus", "corpora", multiple=True, help="A pair corpus under pairs_dir (repeatable; default: "
              "bq, atec, atec-preprocessed, chip2019).")
@click.option("--bench", "benches", multiple=True, help="A faq-bench under bench_dir whose train groups to add "
              "(repeatable; default: diac).")
@click.option("--corpus-limit", type=click.IntRange(1), default=None, help="Sample this many pairs of each corpus.")
@click.option("--mined-per-query", type=click.IntRange(0), default=None, help="Mined negatives per bench query.")
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--max-tokens", type=click.IntRange(8, 512), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--no-bf16", "bf16", flag_value=False, default=None, help="Train in fp32 (CPUs without avx512_bf16).")
@click.option("--eval-every", type=click.IntRange(1), default=None, help="Steps between dev evaluations.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=None, help="Steps between checkpoints.")
@pass_settings
def train_reranker_cmd(settings: Settings, name: str, corpora: tuple[str, ...], benches: tuple[str, ...],
                       **options) -> None:
    """The cross-encoder from bge-small-zh-v1.5, on labelled pairs plus a bench's train groups.

    Resumable: run the same command again after an interruption and it continues from the last
    checkpoint under ~/.cache/es-faq/train-runs/NAME. Ends with the ONNX export (fp32 + INT8)."""
    from .train.cross_encoder import recipe_of, train_reranker

    recipe = recipe_of(corpora=list(corpora) or None, benches=list(benches) or None, **options)
    _emit(train_reranker(settings, name, recipe))


@train.command("embedder")
@_train_options
@click.option("--temperature", type=float, default=None, help="InfoNCE temperature (default 0.07).")
def train_embedder_cmd(settings: Settings, bench: Path, name: str | None, **options) -> None:
    """Bi-encoder from bge-small-zh-v1.5, InfoNCE with in-batch and mined hard negatives."""
    from .train.embedder import train_embedder

    _emit(train_embedder(settings, bench, name or f"embedder-{bench.resolve().name}", **options))


# --- index ------------------------------------------------------------------------------------------
@cli.group("index")
def index_group() -> None:
    """Versioned FAQ indices behind an alias."""


@index_group.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--alias", default=None, help="Alias to load into (default: ES_FAQ_INDEX_ALIAS).")
@click.option("--skip-bad", is_flag=True, help="Skip malformed lines and report them, instead of stopping.")
@pass_settings
def index_load(settings: Settings, path: Path, alias: str | None, skip_bad: bool) -> None:
    """Build a new index version from a JSONL knowledge base and swap the alias to it."""
    from .analyze import Analyzer
    from .dictionary import DictionaryStore
    from .embed import Embedder
    from .kb import count_lines, read_jsonl

    embedder = Embedder(settings)
    client = make_client(settings)
    analyzer = Analyzer(settings, DictionaryStore(client, settings))
    report = index_mod.build(client, settings, read_jsonl(path), analyzer, embedder,
                             alias=alias, skip_bad=skip_bad, total=count_lines(path),
                             meta={"source": str(path.resolve())})
    for bad in report.skipped:
        click.echo(f"skipped {bad}", err=True)
    out = report.as_dict()
    if settings.typo_correction:  # the new version's vocabulary, ready before the first search asks for it
        from .vocabulary import VocabularyStore

        out["vocabulary_words"] = len(VocabularyStore(client, settings).write(report.index))
    _emit(out)


@index_group.command("vectors")
@click.option("--prune", is_flag=True, help="Delete the cached vectors that the current embedder cannot reuse.")
@pass_settings
def index_vectors(settings: Settings, prune: bool) -> None:
    """The vector cache (vector_cache_index): vectors kept per model, and pruning (JSON)."""
    from .embed import Embedder
    from .vectors import VectorCache

    client = make_client(settings)
    cache = VectorCache(client, settings, Embedder(settings))
    out: dict = {"index": cache.index, "model": cache.embedder.manifest.name, "model_key": cache.model_key}
    if prune:
        out["pruned"] = cache.prune()
    out["vectors"] = cache.counts()
    _emit(out)


@index_group.command("versions")
@click.option("--alias", default=None)
@pass_settings
def index_versions(settings: Settings, alias: str | None) -> None:
    """Every kept version of the alias, and which is live."""
    _emit(index_mod.versions(make_client(settings), alias or settings.index_alias))


@index_group.command("rollback")
@click.option("--alias", default=None)
@pass_settings
def index_rollback(settings: Settings, alias: str | None) -> None:
    """Point the alias back at the previous kept version."""
    _emit(index_mod.rollback(make_client(settings), settings, alias or settings.index_alias))


@cli.command("config")
@pass_settings
def config_cmd(settings: Settings) -> None:
    """The effective settings (file + ES_FAQ_* variables), secrets masked."""
    import dataclasses

    from .config import SECRETS, mask_url

    secret = set(SECRETS)

    def shown(key, value):
        if key in secret and value:
            return "***"
        if isinstance(value, str) and "://" in value:  # URLs may carry a password
            return mask_url(value)
        return str(value) if isinstance(value, Path) else value
    _emit({k: shown(k, v) for k, v in dataclasses.asdict(settings).items()})


# --- dictionaries / analysis -------------------------------------------------------------------------
@cli.group("dict")
def dict_group() -> None:
    """Analysis dictionaries in Elasticsearch: user words, synonyms, rewrites, filler."""


def _store(settings: Settings):
    from .dictionary import DictionaryStore

    return DictionaryStore(make_client(settings), settings)


@dict_group.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@pass_settings
def dict_import(settings: Settings, directory: Path | None) -> None:
    """Add the entries of the seed files (default: analyzers/) to the stored dictionaries."""
    from .config import DATA_ROOT

    report = _store(settings).import_dir(directory or DATA_ROOT / "analyzers")
    for problem in report["rejected"]:
        click.echo(f"rejected {problem}", err=True)
    _emit(report)


@dict_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_settings
def dict_export(settings: Settings, directory: Path) -> None:
    """Write the stored dictionaries as seed files into DIRECTORY."""
    _emit(_store(settings).export_dir(directory))


@dict_group.command("list")
@click.option("--kind", type=click.Choice(KINDS), default=None)
@pass_settings
def dict_list(settings: Settings, kind: str | None) -> None:
    """Every stored entry, one a line, in the seed files' format."""
    from .dictionary import format_entry

    snapshot = _store(settings).load()
    click.echo(f"# version {snapshot.version}", err=True)
    for entry_kind, terms in snapshot.entries():
        if kind in (None, entry_kind):
            click.echo(f"{entry_kind}\t{format_entry(entry_kind, terms)}")


@dict_group.command("add")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("terms", nargs=-1, required=True)
@pass_settings
def dict_add(settings: Settings, kind: str, terms: tuple[str, ...]) -> None:
    """Add an entry: `word 花呗`, `synonym 查询 查看 查找`, `rewrite 搏学考试 博学考试`, `filler 亲`."""
    from .errors import InvalidInput

    try:
        version = _store(settings).add(kind, list(terms))
    except InvalidInput as exc:
        raise click.UsageError(f"rejected: {exc.message}") from None
    click.echo(f"added; dictionary version {version} (running APIs pick it up within "
               f"{settings.dict_check_interval_s:g} s)")


@dict_group.command("remove")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("terms", nargs=-1, required=True)
@pass_settings
def dict_remove(settings: Settings, kind: str, terms: tuple[str, ...]) -> None:
    """Remove an entry (a synonym group is named by all its terms, a rewrite by its source)."""
    from .errors import InvalidInput

    try:
        version = _store(settings).remove(kind, list(terms))
    except InvalidInput as exc:
        raise click.UsageError(exc.message) from None
    click.echo(f"removed; dictionary version {version}")


@dict_group.command("preview")
@click.argument("action", type=click.Choice(("add", "remove")))
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("terms", nargs=-1, required=True)
@click.option("--last", default=200, show_default=True, type=click.IntRange(1, 5000),
              help="Replay the newest N searches of the query log.")
@click.option("--bench", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Replay a faq-bench split's queries instead, and compare its metrics.")
@click.option("--split", default="dev", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N queries of the split.")
@click.option("--mode", type=click.Choice(SEARCH_MODES), default=None, help="Default: the search_mode setting.")
@click.option("--index", default=None, help="With the query log: the alias to search (default: ES_FAQ_INDEX_ALIAS).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@pass_settings
def dict_preview(settings: Settings, action: str, kind: str, terms: tuple[str, ...], last: int, bench: Path | None,
                 split: str, limit: int | None, mode: str | None, index: str | None, as_json: bool) -> None:
    """What `dict add|remove KIND TERMS...` would change, without changing anything: which queries'
    first FAQ or decision moves (before -> after), and with --bench how the metrics move."""
    from .errors import InvalidInput
    from .pipeline import Searcher
    from .preview import preview

    try:
        report = preview(Searcher(settings), action, kind, list(terms), last=last, bench=bench, split=split,
                         limit=limit, mode=mode, index=index)
    except InvalidInput as exc:
        raise click.UsageError(exc.message) from None
    if as_json:
        _emit(report)
        return
    change = report["change"]
    click.echo(f"preview: {change['action']} {change['kind']} {' '.join(change['terms'])} "
               f"(dictionary version {report['dictionary_version']}, nothing committed)")
    click.echo(f"{report['queries']} queries replayed, {len(report['changed'])} would change:")
    for row in report["changed"]:
        before, after = row["before"], row["after"]
        click.echo(f"  {row['query']}\n    top {before['top']} -> {after['top']}; decision {before['decision']} -> "
                   f"{after['decision']}; tokens {' '.join(before['tokens'])} -> {' '.join(after['tokens'])}")
    for name, value in (report.get("metrics", {}).get("delta") or {}).items():
        if not isinstance(value, dict) and name in report["metrics"]["after"]:
            click.echo(f"  {name}: {report['metrics']['before'][name]} -> {report['metrics']['after'][name]} "
                       f"({value:+g})")


@cli.command()
@click.argument("query")
@pass_settings
def analyze(settings: Settings, query: str) -> None:
    """Show how a query is analysed: normalised text, rewrites, tokens, synonym expansions."""
    from .analyze import Analyzer

    _emit(Analyzer(settings, _store(settings)).analyze(query, expand=True).as_dict())


# --- search / eval / serve --------------------------------------------------------------------------
@cli.command()
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
    from .errors import InvalidInput
    from .pipeline import Searcher

    try:
        result = Searcher(settings).search(query, k, mode, index=index, category=category, explain=debug)
    except InvalidInput as exc:
        raise click.UsageError(exc.message) from None
    _emit(result.as_dict(debug=debug))


@cli.command("eval")
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
    from . import calibrate as cal
    from .evaluate import ensure_bench_index, evaluate, load_queries
    from .pipeline import Searcher

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


@cli.command("eval-pairs")
@click.option("--corpus", "corpora", multiple=True, help="A corpus under pairs_dir with a dev.tsv (repeatable; "
              "default: bq, afqmc, lcqmc, chip2019, oppo-xiaobu, pawsx-zh).")
@click.option("--model", default=None, help="A reranker model (default: the rerank_model setting).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Score a seeded sample of N dev pairs per corpus.")
@pass_settings
def eval_pairs_cmd(settings: Settings, corpora: tuple[str, ...], model: str | None, limit: int | None) -> None:
    """The cross-encoder on labelled dev pairs: accuracy, F1 and ROC-AUC (percent), at a logit
    threshold chosen on training data."""
    from .pair_eval import CORPORA, evaluate_pairs

    _emit(evaluate_pairs(settings, corpora or CORPORA, model, limit))


@cli.command()
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
@click.option("--features", default=",".join(FEATURES), show_default=True,
              type=click.Choice(FEATURE_SETS), help="What the decision model sees (comma-separated).")
@click.option("--curve", "curve_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the curve over the answer threshold here (JSON and PNG).")
@pass_settings
def calibrate(settings: Settings, benches: tuple[Path, ...], split: str, near_miss_max: float, no_match_max: float,
              limit: int | None, write: bool, features: str, curve_dir: Path | None) -> None:
    """Fit the decision (P(right) from the cross-encoder's logit and margin) on dev splits and choose
    the thresholds: the most coverage within the false-answer bounds (JSON)."""
    from . import calibrate as cal
    from .decide import Calibration
    from .evaluate import ensure_bench_index, load_queries
    from .pipeline import Searcher

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


@cli.command()
@click.option("--since", default="7d", show_default=True, help="How far back: a number and s, m, h, d or w.")
@click.option("--top", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="How many queries and clusters to list.")
@pass_settings
def report(settings: Settings, since: str, top: int) -> None:
    """From the query log: searches, no-match rate, failing queries and clusters of them (JSON)."""
    from .errors import InvalidInput
    from .report import query_log_report

    try:
        _emit(query_log_report(make_client(settings), settings, since, top))
    except InvalidInput as exc:
        raise click.UsageError(exc.message) from None


@cli.group()
def querylog() -> None:
    """The query log's daily indices (docs/api.md, "Query log")."""


@querylog.command("prune")
@click.option("--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
@pass_settings
def querylog_prune(settings: Settings, dry_run: bool) -> None:
    """Delete the daily indices older than query_log_retention_days (the API does it daily)."""
    from .api.querylog import prune

    _emit(prune(make_client(settings), settings, dry_run=dry_run))


@cli.command()
@click.option("--alias", default=None, help="Alias to examine (default: ES_FAQ_INDEX_ALIAS).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as one self-contained HTML file.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as JSON.")
@click.option("--depth", type=click.IntRange(1, 50), default=None,
              help="Candidates per question (default: doctor_depth).")
@click.option("--threshold", type=float, default=None,
              help="Cross-encoder logit at which two questions collide (default: doctor_threshold).")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="Search the questions of a seeded sample of N FAQs only (a large knowledge base).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--since", default=None,
              help="Judge reach on the query log of the last N s, m, h, d or w (default: all of it).")
@click.option("--no-progress", "progress", flag_value=False, default=True)
@pass_settings
def doctor(settings: Settings, alias: str | None, html_out: Path | None, json_out: Path | None, depth: int | None,
           threshold: float | None, sample: int | None, seed: int, since: str | None, progress: bool) -> None:
    """Examine the live knowledge base: colliding FAQs, stray similar questions, unreached FAQs, answers."""
    from . import doctor as doctor_mod
    from .doctor_view import print_report, render_html
    from .errors import InvalidInput
    from .rerank import Reranker

    try:
        result = doctor_mod.run(make_client(settings), settings, Reranker(settings), alias=alias, depth=depth,
                                threshold=threshold, sample=sample, seed=seed, since=since, progress=progress)
    except InvalidInput as exc:
        raise click.UsageError(exc.message) from None
    print_report(result)
    if html_out:
        html_out.write_text(render_html(result), encoding="utf-8")
        click.echo(f"HTML report: {html_out}", err=True)
    if json_out:
        json_out.write_text(json.dumps(result.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        click.echo(f"JSON report: {json_out}", err=True)


@cli.group()
def kibana() -> None:
    """Kibana saved objects for the query log."""


@kibana.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the NDJSON here (default: standard output).")
@pass_settings
def kibana_export(settings: Settings, output: Path | None) -> None:
    """A data view on the query log and its dashboard, as saved-objects NDJSON for Kibana's import."""
    from .kibana import saved_objects_ndjson

    text = saved_objects_ndjson(settings)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{output}: import it in Kibana (Stack Management > Saved objects > Import)", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="Default: from es_faq/api/gunicorn_conf.py.")
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the HTTP API with gunicorn (configuration in es_faq/api/gunicorn_conf.py)."""
    import os

    from .api import gunicorn_conf

    argv = [sys.executable, "-m", "gunicorn", "-c", gunicorn_conf.__file__, "--bind", f"{host}:{port}"]
    if workers:  # through the environment, so gunicorn_conf.py sizes each worker's ONNX threads to it
        os.environ["ES_FAQ_API_WORKERS"] = str(workers)
    os.execv(sys.executable, argv + ["es_faq.api.app:create_app()"])


def _exit_on_sigterm(signum, frame) -> None:
    # Turn `kill` into an exception so half-built index versions are cleaned up on the way out.
    raise SystemExit(128 + signum)


from .sync.cli import sync  # noqa: E402  (registered last: the sync group imports nothing heavy)

cli.add_command(sync)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EsFaqError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_status)
    except (TransportError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status_code < 500:
            click.echo(f"error: Elasticsearch refused the request: {exc}", err=True)
            sys.exit(1)
        settings = load_settings()
        click.echo(f"error: {unreachable(settings, exc).message}", err=True)
        sys.exit(3)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
