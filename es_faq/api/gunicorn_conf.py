"""gunicorn settings for `es-faq serve`: sized for a 2-core machine, models loaded once per worker,
metrics shared across workers, logs as JSON lines on stderr."""

import gc
import os
import shutil
import tempfile

from es_faq.api.logs import logging_config

# Each worker holds its own ONNX session; two workers keep 2 cores busy. A gthread thread is held
# while its client sends the request (a client that stalls mid-headers holds it for good) and while
# Elasticsearch answers. Threads are started only as connections need them and an idle one costs a
# little memory, so there are many: with 256 a worker, 200 connections stalled mid-headers (all of
# them in one worker, at worst) leave /healthz and searches answered; with 16, about 20 took the
# server down (bench/drills/stalled_clients.py, docs/reliability.md).
workers = int(os.environ.get("ES_FAQ_API_WORKERS", str(os.cpu_count() or 1)))
threads = int(os.environ.get("ES_FAQ_API_THREADS", "256"))
# Each worker's ONNX sessions get an equal share of the cores: sessions that each claim every core
# fight over them under load (docs/benchmarks.md, "Serving throughput over HTTP"). Set ES_FAQ_ONNX_THREADS to override.
os.environ.setdefault("ES_FAQ_ONNX_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
# A request tokenises one query (or one query's candidate pairs): the tokenizers library's thread
# pool only adds hand-offs between threads there (2.2 ms a call under load, 0.2 ms alone; profile in
# docs/benchmarks.md, "Serving throughput over HTTP").
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# ES_FAQ_API_WORKER_CLASS is for the stalled-clients drill's comparisons only (gevent was measured,
# docs/reliability.md); es-faq is served and tested with gthread.
worker_class = os.environ.get("ES_FAQ_API_WORKER_CLASS", "gthread")
# onnxruntime sessions are not fork-safe: load models in each worker, not in the master.
preload_app = False
timeout = 30
graceful_timeout = 20
keepalive = 5
# gunicorn's control socket (for gunicornc) is one path per user, $XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl: a second `es-faq serve` on the host replaced the first one's and deleted
# it on exit. es-faq does not use gunicornc; manage the server with signals (docs/reliability.md).
control_socket_disable = True

# The app logs one JSON line per request, with its request id; gunicorn's own lines are JSON too.
accesslog = None
errorlog = "-"
logconfig_dict = logging_config(os.environ.get("ES_FAQ_API_LOG_LEVEL", "INFO").upper())

# prometheus_client's multiprocess mode: every worker writes its samples to files in one
# directory and /metrics sums them. It is set here, in the master before it forks the workers (which
# import prometheus_client later); `es-faq serve` imports this file too, so nothing happens at import.
_created_dirs: list[str] = []


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="es-faq-metrics-")
        _created_dirs.append(directory)
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):  # samples of an earlier run would be added to this one's
            os.unlink(os.path.join(directory, name))


def post_worker_init(worker):
    """The worker has built the app (models, jieba's tables, the typo corrector: about 290k objects the
    collector tracks). Freeze them out of the cyclic collector: a full collection walked them all, 58-71 ms
    that stopped every thread of the worker about once a thousand searches (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    worker.log.info("worker %s: app built, %d objects frozen out of the garbage collector", worker.pid,
                    gc.get_freeze_count())


def pre_request(worker, req):
    """A body longer than api_max_body_bytes is answered 413 unread. gunicorn then drains at most
    64 KiB of it and, past that, closes a connection its answer called keep-alive: the client's next
    request on it fails. Saying `Connection: close` with the 413 lets the client open a new one.

    A chunked body has no length to tell: its connection is kept only once the app has read it to its
    end (_ReadToTheEnd). One over the limit (the app reads the limit and a byte, then answers 413) or
    not read at all is answered `Connection: close`, and gunicorn reads no more of it; its drain of
    the rest used to read past the limit, and served what followed as the next request."""
    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "")
    if length.isdigit() and int(length) > _max_body_bytes():
        req.must_close = True
    elif any(name == "TRANSFER-ENCODING" for name, _ in req.headers):  # gunicorn accepts only chunked
        req.must_close = True
        req.body = _ReadToTheEnd(req)


class _ReadToTheEnd:
    """A request's body (wsgi.input) that lets its connection be kept once it has been read to its end."""

    def __init__(self, req):
        self._req, self._body = req, req.body

    def read(self, size=None):
        data = self._body.read(size)
        if not data and size != 0:
            self._req.must_close = False
        return data

    def readline(self, size=None):
        line = self._body.readline(size)
        if not line and size != 0:
            self._req.must_close = False
        return line

    def readlines(self, size=None):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")

    def __getattr__(self, name):  # what gunicorn itself asks of the body (`failed`, when a chunk was bad)
        return getattr(self._body, name)


def _max_body_bytes() -> int:
    global _MAX_BODY
    if _MAX_BODY is None:
        from es_faq.config.load import load_settings

        _MAX_BODY = load_settings().api_max_body_bytes
    return _MAX_BODY


_MAX_BODY: int | None = None


def child_exit(server, worker):
    from prometheus_client import multiprocess

    # Live gauges of a dead worker are dropped; its counters and histograms stay in the sums.
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for directory in _created_dirs:
        shutil.rmtree(directory, ignore_errors=True)
