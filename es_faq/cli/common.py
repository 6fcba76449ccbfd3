"""What the command groups share: the settings each command is passed, JSON output, the dictionary store."""

from __future__ import annotations

import json

import click

from ..config import Settings
from ..engine.client import make_client


def _emit(obj, indent: int | None = 2) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=indent))


pass_settings = click.make_pass_decorator(Settings)


def _store(settings: Settings):
    from ..search.dictionary import DictionaryStore

    return DictionaryStore(make_client(settings), settings)
