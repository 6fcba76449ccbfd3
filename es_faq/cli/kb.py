"""The knowledge base and its tools: `es-faq index`, `dict`, `doctor`, `report`, `querylog` and `kibana`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config.settings import SEARCH_MODES, Settings
from ..engine.client import make_client
from ..kb import index as index_mod
from ..search.dictionary import KINDS
from .common import _emit, _store, pass_settings


@click.group("index")
def index_group() -> None:
    """Versioned FAQ indices behind an alias."""


@index_group.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--alias", default=None, help="Alias to load into (default: ES_FAQ_INDEX_ALIAS).")
@click.option("--skip-bad", is_flag=True, help="Skip malformed lines and report them, instead of stopping.")
@click.option("--force-merge/--no-force-merge", default=None,
              help="Merge the new version to one segment before the alias moves to it (default: index_force_merge).")
@pass_settings
def index_load(settings: Settings, path: Path, alias: str | None, skip_bad: bool, force_merge: bool | None) -> None:
    """Build a new index version from a JSONL knowledge base and swap the alias to it."""
    if force_merge is not None:
        settings = settings.replace(index_force_merge=force_merge)
    report = index_mod.load_file(settings, path, alias=alias, skip_bad=skip_bad)
    for bad in report.skipped:
        click.echo(f"skipped {bad}", err=True)
    _emit(report.as_dict())


@index_group.command("vectors")
@click.option("--prune", is_flag=True, help="Delete the cached vectors no index uses: other models', and texts "
              "that no open FAQ index holds.")
@pass_settings
def index_vectors(settings: Settings, prune: bool) -> None:
    """The vector cache (vector_cache_index): vectors kept per model, and pruning (JSON)."""
    from ..kb.vectors import VectorCache
    from ..search.analyze import Analyzer
    from ..search.dictionary import DictionaryStore
    from ..search.embed import Embedder

    client = make_client(settings)
    cache = VectorCache(client, settings, Embedder(settings))
    out: dict = {"index": cache.index, "model": cache.embedder.manifest.name, "model_key": cache.model_key}
    if prune:  # the question texts analysed as a load analyses them, with the stored dictionaries
        out["pruned"] = cache.prune(Analyzer(settings, DictionaryStore(client, settings)))
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


# --- dictionaries ----------------------------------------------------------------------------------
@click.group("dict")
def dict_group() -> None:
    """Analysis dictionaries in Elasticsearch: user words, synonyms, rewrites, filler."""


@dict_group.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@pass_settings
def dict_import(settings: Settings, directory: Path | None) -> None:
    """Add the entries of the seed files (default: analyzers/) to the stored dictionaries."""
    from ..config.settings import DATA_ROOT

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
    from ..search.dictionary import format_entry

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

    from ..errors import InvalidInput

    try:
        version = _store(settings).add(kind, list(terms))
    except InvalidInput as exc:  # the words of the API's refusal, after "rejected:"
        raise click.UsageError(f"rejected: {exc.message}") from None
    click.echo(f"added; dictionary version {version} (running APIs pick it up within "
               f"{settings.dict_check_interval_s:g} s)")


@dict_group.command("remove")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("terms", nargs=-1, required=True)
@pass_settings
def dict_remove(settings: Settings, kind: str, terms: tuple[str, ...]) -> None:
    """Remove an entry (a synonym group is named by all its terms, a rewrite by its source)."""

    version = _store(settings).remove(kind, list(terms))
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
    from ..evaluation.preview import as_text, preview
    from ..search.pipeline import Searcher

    report = preview(Searcher(settings), action, kind, list(terms), last=last, bench=bench, split=split,
                     limit=limit, mode=mode, index=index)
    if as_json:
        _emit(report)
    else:
        click.echo(as_text(report))


# --- the query log and the knowledge base's health ------------------------------------------------
@click.command()
@click.option("--since", default="7d", show_default=True, help="How far back: a number and s, m, h, d or w.")
@click.option("--top", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="How many queries and clusters to list.")
@pass_settings
def report(settings: Settings, since: str, top: int) -> None:
    """From the query log: searches, no-match rate, failing queries and clusters of them (JSON)."""
    from ..kb.report import query_log_report

    _emit(query_log_report(make_client(settings), settings, since, top))


@click.group()
def querylog() -> None:
    """The query log's daily indices (docs/api.md, "Query log")."""


@querylog.command("prune")
@click.option("--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
@pass_settings
def querylog_prune(settings: Settings, dry_run: bool) -> None:
    """Delete the daily indices older than query_log_retention_days (the API does it daily)."""
    from ..kb.querylog import prune

    _emit(prune(make_client(settings), settings, dry_run=dry_run))


@querylog.command("bench")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--since", default="30d", show_default=True, help="How far back: a number and s, m, h, d or w.")
@click.option("--sample", default=1000, show_default=True, type=click.IntRange(1, 10_000),
              help="Searches to draw at random (each distinct query is listed once).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--alias", default=None, help="The knowledge base (default: ES_FAQ_INDEX_ALIAS).")
@click.option("--no-progress", "progress", flag_value=False, default=True)
@pass_settings
def querylog_bench(settings: Settings, directory: Path, since: str, sample: int, seed: int, alias: str | None,
                   progress: bool) -> None:
    """A faq-bench DIRECTORY of the live knowledge base and a random sample of its customers' queries, for a person
    to label and then calibrate the decision on (`es-faq calibrate --bench DIRECTORY --split dev`; docs/training.md,
    "Calibrating for your own knowledge base")."""
    from ..kb.log_bench import log_bench

    _emit(log_bench(make_client(settings), settings, directory, since, sample, seed, alias, progress))


@click.command()
@click.option("--alias", default=None, help="Alias to examine (default: ES_FAQ_INDEX_ALIAS).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as one self-contained HTML file.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as JSON.")
@click.option("--depth", type=click.IntRange(1, 50), default=None,
              help="Candidates per question (default: doctor_depth).")
@click.option("--threshold", type=float, default=None,
              help="Collision score (cross-encoder logit + doctor_cosine_weight x cosine) at which two questions "
                   "collide (default: doctor_threshold; 5.9 gives a short list).")
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
    from ..kb import doctor as doctor_mod
    from ..kb.doctor_view import print_report, render_html
    from ..search.rerank import Reranker

    result = doctor_mod.run(make_client(settings), settings, Reranker(settings), alias=alias, depth=depth,
                            threshold=threshold, sample=sample, seed=seed, since=since, progress=progress)
    print_report(result)
    if html_out:
        html_out.write_text(render_html(result), encoding="utf-8")
        click.echo(f"HTML report: {html_out}", err=True)
    if json_out:
        json_out.write_text(json.dumps(result.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        click.echo(f"JSON report: {json_out}", err=True)


@click.group()
def kibana() -> None:
    """Kibana saved objects for the query log."""


@kibana.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the NDJSON here (default: standard output).")
@pass_settings
def kibana_export(settings: Settings, output: Path | None) -> None:
    """A data view on the query log and its dashboard, as saved-objects NDJSON for Kibana's import."""
    from ..kb.kibana import saved_objects_ndjson

    text = saved_objects_ndjson(settings)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{output}: import it in Kibana (Stack Management > Saved objects > Import)", err=True)
    else:
        click.echo(text, nl=False)
