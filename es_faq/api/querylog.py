"""The query log: each search (and its feedback) written to daily Elasticsearch indices, off the request path.

A request only puts a document on a bounded queue (dropped and counted when full); one background
thread per process writes the queue with the bulk helper every `query_log_flush_s` or
`query_log_batch_size` documents. Each document's _id is the request id and every write is an
upsert, so a search and its feedback merge into one document in whichever order they arrive.

The indices, their template, the documents and retention are the query log's schema, in
es_faq/kb/querylog.py; this module only writes. It applies retention when it starts and then
about daily (`prune`; `es-faq querylog prune` does it on demand)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timezone

from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch.helpers import BulkIndexError, bulk

from ..config.indices import querylog_index
from ..config.settings import Settings
from ..kb.querylog import feedback_document, prune, put_template, search_document
from ..search.pipeline import SearchResult
from . import metrics

log = logging.getLogger("es_faq.api.querylog")

PRUNE_EVERY_S = 24 * 3600


def _now() -> datetime:
    return datetime.now(timezone.utc)


class QueryLog:
    """Queue search and feedback documents for the query-log indices; `start()` runs the writer thread."""

    def __init__(self, settings: Settings, client: Elasticsearch, queue_size: int | None = None):
        self.settings = settings
        self.client = client
        self.prefix = settings.query_log_prefix
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size or settings.query_log_queue_size)
        self._template_ready = False
        self._stop = threading.Event()
        self._flush_now = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0  # queued or being written; flush() waits for zero
        self._thread: threading.Thread | None = None
        self._pruned_at = time.monotonic()  # a failed prune at start is retried PRUNE_EVERY_S later

    # --- the request side: never blocks ---------------------------------------------------------

    def log_search(self, request_id: str, result: SearchResult, channel_id: str | None, user_id: str | None) -> None:
        now = _now()
        self._put("search", querylog_index(self.prefix, now), request_id,
                  search_document(request_id, result, channel_id, user_id, now))

    def log_feedback(self, request_id: str, faq_id: str, feedback: str) -> None:
        # Feedback goes to the index of the day it arrives: the same day as its search but for
        # searches just before midnight UTC (docs/api.md, "Query log").
        now = _now()
        self._put("feedback", querylog_index(self.prefix, now), request_id,
                  feedback_document(request_id, faq_id, feedback, now))

    def _put(self, kind: str, index: str, request_id: str, doc: dict) -> None:
        action = {"_op_type": "update", "_index": index, "_id": request_id, "doc": doc, "doc_as_upsert": True,
                  "retry_on_conflict": 3}
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait((kind, action))
        except queue.Full:
            with self._idle:
                self._pending -= 1
            metrics.QUERYLOG_DROPPED.labels("queue_full").inc()
            return
        if self._queue.qsize() >= self.settings.query_log_batch_size:
            self._flush_now.set()

    # --- the writer thread ------------------------------------------------------------------------

    def start(self) -> QueryLog:
        self._thread = threading.Thread(target=self._run, name="es-faq-querylog", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or dropped); False on timeout."""
        self._flush_now.set()
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or not self._idle.wait(left):
                    return False
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is None:
            return
        self._stop.set()
        self._flush_now.set()
        self._thread.join(timeout_s)
        self._thread = None

    def ensure_template(self) -> bool:
        """PUT the composable index template for `<prefix>-*`; False (to retry later) if Elasticsearch says no."""
        try:
            put_template(self.client, self.prefix)
        except (TransportError, ApiError) as exc:
            log.warning("query log template not written; will retry", extra={"error": type(exc).__name__})
            return False
        self._template_ready = True
        return True

    def prune(self) -> None:
        """Apply the retention; a failure is logged and retried at the next turn, never raised."""
        try:
            report = prune(self.client, self.settings)
        except (TransportError, ApiError) as exc:
            log.warning("query log retention not applied; will retry", extra={"error": type(exc).__name__})
            return
        except Exception:  # a bug here must not kill the writer: searches would go unlogged, silently
            log.exception("query log retention failed; will retry")
            return
        self._pruned_at = time.monotonic()
        if report["deleted"]:
            log.info("query log indices past retention deleted",
                     extra={"indices": report["deleted"], "retention_days": report["retention_days"]})

    def _run(self) -> None:
        self.ensure_template()
        self.prune()
        while True:
            self._flush_now.wait(self.settings.query_log_flush_s)
            self._flush_now.clear()
            try:
                self._write_batches()
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                    self.prune()
            except Exception:  # logged, and the writer goes on: a dead thread would drop every search unseen
                log.exception("query log writer failed; carrying on")
            if self._stop.is_set():
                self._write_batches()
                return

    def _write_batches(self) -> None:
        while True:
            batch: list[tuple[str, dict]] = []
            while len(batch) < self.settings.query_log_batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            try:
                self._write(batch)
            except Exception:  # a bug here must not kill the writer and leave the queue to fill
                log.exception("query log batch failed")
                metrics.QUERYLOG_DROPPED.labels("write_failed").inc(len(batch))
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _write(self, batch: list) -> None:
        # Without the template the first daily index would get dynamic mappings: wait for it.
        if not self._template_ready and not self.ensure_template():
            metrics.QUERYLOG_DROPPED.labels("write_failed").inc(len(batch))
            return
        try:
            ok, errors = bulk(self.client, [action for _, action in batch], raise_on_error=False,
                              stats_only=False)
            assert isinstance(errors, list)  # without stats_only: the failed items, not a count
        except (TransportError, ApiError, BulkIndexError) as exc:
            # Dropped, not retried: the query log must never hold memory or threads for an outage.
            log.warning("query log batch dropped", extra={"error": type(exc).__name__, "docs": len(batch)})
            metrics.QUERYLOG_DROPPED.labels("write_failed").inc(len(batch))
            return
        failed = {item.get("update", {}).get("_id") for item in errors}
        for kind, action in batch:
            if action["_id"] in failed:
                metrics.QUERYLOG_DROPPED.labels("write_failed").inc()
            else:
                metrics.QUERYLOG_LOGGED.labels(kind).inc()
