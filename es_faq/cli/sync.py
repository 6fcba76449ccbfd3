"""`es-faq sync ...`: a thin shell over es_faq.sync.run."""

from __future__ import annotations

import signal
import sys
import threading

import click

from ..config.settings import Settings
from .common import _emit, pass_settings

alias_option = click.option("--alias", default=None, help="Alias to keep in step (default: ES_FAQ_INDEX_ALIAS).")


def _sync(settings: Settings, alias: str | None):
    from ..sync.run import Sync

    return Sync(settings, alias=alias)


def _list_problems(report) -> None:
    for bad in report.skipped:
        click.echo(f"skipped {bad}", err=True)
    for note in report.cleaned:
        click.echo(f"cleaned {note}", err=True)


@click.group()
def sync() -> None:
    """Keep the index in step with the FAQ tables in MySQL (docs/sync.md)."""


@sync.command("full")
@alias_option
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs).")
# The admin reindex takes the writer lock itself (so a second request gets 409 at once) and hands
# its lease over to the process it starts.
@click.option("--adopt-lock", default=None, hidden=True, metavar="OWNER")
@pass_settings
def full(settings: Settings, alias: str | None, no_progress: bool, adopt_lock: str | None) -> None:
    """Read every FAQ into a new index version, verify it, swap the alias; also how to re-embed."""
    report = _sync(settings, alias).full(progress=not no_progress, adopt=adopt_lock)
    _list_problems(report)
    _emit(report.as_dict())


@sync.command("incremental")
@alias_option
@click.option("--follow", is_flag=True, help="Keep running; stop with SIGTERM or Ctrl-C.")
@click.option("--interval", type=float, default=None, metavar="S",
              help="Seconds between runs with --follow (default: ES_FAQ_MYSQL_FOLLOW_INTERVAL_S).")
@pass_settings
def incremental(settings: Settings, alias: str | None, follow: bool, interval: float | None) -> None:
    """Write the rows changed since the last run; safe to run from cron every few seconds."""
    runner = _sync(settings, alias)
    if not follow:
        report = runner.incremental()
        _list_problems(report)
        _emit(report.as_dict())
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    interval = settings.mysql_follow_interval_s if interval is None else interval
    click.echo(f"following {runner.source.url} into {runner.alias} every {interval:g} s", err=True)

    def on_report(report) -> None:
        _list_problems(report)
        _emit(report.as_dict(), indent=None)
        sys.stdout.flush()

    runner.follow(interval, stop, lambda m: click.echo(m, err=True), on_report)
    click.echo("stopped", err=True)


@sync.command("check")
@alias_option
@click.option("--repair", is_flag=True, help="Rewrite what differs: missing, changed and extra FAQs.")
@pass_settings
def check(settings: Settings, alias: str | None, repair: bool) -> None:
    """Compare MySQL with the index (ids, content hashes); exit 1 when differences remain."""
    report = _sync(settings, alias).check(repair=repair)
    _emit(report)
    if report["differences"] and not repair:
        sys.exit(1)
