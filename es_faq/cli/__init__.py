"""The `es-faq` command line: a thin shell over the library, one module per group of commands."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from elasticsearch import ApiError, TransportError

from ..config.load import load_settings
from ..config.settings import Settings
from ..engine.client import refusal, unreachable
from ..errors import EsFaqError, NotElasticsearch
from . import engine, kb, models, search, serve, sync
from .common import _emit, pass_settings


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """es-faq: Chinese FAQ retrieval on Elasticsearch."""
    ctx.obj = load_settings()


@click.command("config")
@pass_settings
def config_cmd(settings: Settings) -> None:
    """The effective settings (file + ES_FAQ_* variables), secrets masked."""
    import dataclasses

    from ..config.settings import SECRETS
    from ..config.urls import mask_url

    secret = set(SECRETS)

    def shown(key, value):
        if key in secret and value:
            return "***"
        if isinstance(value, str) and "://" in value:  # URLs may carry a password
            return mask_url(value)
        return str(value) if isinstance(value, Path) else value
    _emit({k: shown(k, v) for k, v in dataclasses.asdict(settings).items()})


# The groups' modules stay the package's attributes (es_faq.cli.search is the module, not the command).
for command in (engine.engine, models.models, models.train, kb.index_group, config_cmd, kb.dict_group,
                search.analyze, search.search, search.eval_cmd, search.eval_pairs_cmd, search.calibrate, kb.report,
                kb.querylog, kb.doctor, kb.kibana, serve.serve, sync.sync):
    cli.add_command(command)


def _exit_on_sigterm(signum, frame) -> None:
    # Turn `kill` into an exception so half-built index versions are cleaned up on the way out.
    raise SystemExit(128 + signum)


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
        settings = load_settings()
        mapped = refusal(settings, exc) if isinstance(exc, ApiError) else unreachable(settings, exc)
        if isinstance(exc, ApiError) and exc.status_code < 500 and not isinstance(mapped, NotElasticsearch):
            # The refusal's reason (a mapping conflict, a bad request) is what the operator needs here.
            click.echo(f"error: {mapped.message} {str(exc)[:500]}", err=True)
        else:
            click.echo(f"error: {mapped.message}", err=True)
        sys.exit(mapped.exit_status)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
