"""What the command groups share: the settings each command is passed, JSON output, the dictionary store."""

from __future__ import annotations

import functools
import json

import click

from ..config.settings import Settings
from ..engine.client import make_client
from ..errors import InvalidInput


def _emit(obj, indent: int | None = 2) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=indent))


def pass_settings(command):
    """Pass a command the settings; its InvalidInput is a usage error: exit status 2, the command's
    usage and the message (other errors are main()'s)."""
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InvalidInput as exc:
            raise click.UsageError(exc.message) from None
    return click.make_pass_decorator(Settings)(functools.update_wrapper(run, command))


def _store(settings: Settings):
    from ..search.dictionary import DictionaryStore

    return DictionaryStore(make_client(settings), settings)
