"""`es-faq engine ...`: a local Elasticsearch for development and tests."""

from __future__ import annotations

import click

from ..config.settings import Settings
from ..engine import local as engine_mod
from .common import _emit, pass_settings


@click.group()
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


@engine.command("restart")
@click.option("--rolling", is_flag=True,
              help="One node at a time, waiting for green before the next (required: the only kind there is).")
@click.option("--drain", is_flag=True,
              help="Move every shard off each node before stopping it, instead of pausing replica allocation.")
@click.option("--timeout", "timeout_s", type=float, default=600, show_default=True,
              help="Seconds to wait for green after each node.")
@click.option("--node", type=click.IntRange(1, 9), default=None, help="Restart only this node (1, 2, ...).")
@pass_settings
def engine_restart(settings: Settings, rolling: bool, drain: bool, timeout_s: float, node: int | None) -> None:
    """Restart the local cluster's nodes one at a time while it serves (docs/reliability.md)."""
    if not rolling:
        raise click.UsageError("only a rolling restart is offered: `es-faq engine restart --rolling`")
    _emit(engine_mod.rolling_restart(settings, echo=lambda m: click.echo(m, err=True), drain=drain,
                                     timeout_s=timeout_s, only=node))


@engine.command("status")
@pass_settings
def engine_status(settings: Settings) -> None:
    """URL, version and health of the cluster at ES_FAQ_ES_URL."""
    _emit(engine_mod.status(settings))
