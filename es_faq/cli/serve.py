"""`es-faq serve`: the HTTP API under gunicorn."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="Default: from es_faq/api/gunicorn_conf.py.")
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the HTTP API with gunicorn (configuration in es_faq/api/gunicorn_conf.py)."""
    import os

    from ..api import gunicorn_conf

    argv = [sys.executable, "-m", "gunicorn", "-c", gunicorn_conf.__file__, "--bind", f"{host}:{port}"]
    if workers:  # through the environment, so gunicorn_conf.py sizes each worker's ONNX threads to it
        os.environ["ES_FAQ_API_WORKERS"] = str(workers)
    os.execv(sys.executable, argv + ["es_faq.api.app:create_app()"])
