"""Full, incremental and check runs: MySQL rows -> analyse and embed -> the versioned index, one run at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from ..config.settings import Settings
from ..engine.client import bulk_write, live_indices, make_client, unreachable
from ..errors import DataError, EngineUnavailable, EsFaqError, IndexMissing, SourceUnavailable, SyncBusy
from ..kb.faq import BadRecord, Faq
from ..kb.index import build, check_alias, content_hash, faq_documents, lock_alias
from ..kb.lock import Lock
from ..kb.vectors import VectorCache
from ..search.analyze import Analyzer
from ..search.dictionary import DictionaryStore
from ..search.embed import Embedder
from .source import BadRow, Change, MySqlSource
from .state import SyncState

LISTED = 100  # ids or rows listed per kind in a report; the counts are always complete


@dataclass
class SyncReport:
    command: str
    alias: str
    index: str = ""
    upserted: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[BadRecord] = field(default_factory=list)  # BadRows, passed on by index.build
    cleaned: list[str] = field(default_factory=list)
    watermark: dict | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.upserted or self.deleted or self.skipped)

    def as_dict(self) -> dict:
        return {"command": self.command, "alias": self.alias, "index": self.index, "upserted": self.upserted,
                "unchanged": self.unchanged, "deleted": self.deleted, "skipped": len(self.skipped),
                "skipped_rows": [str(b) for b in self.skipped[:LISTED]], "cleaned": len(self.cleaned),
                "cleaned_rows": self.cleaned[:LISTED], "watermark": self.watermark,
                "seconds": round(self.seconds, 2), **self.extra}


def _key(mark: dict) -> tuple:
    return datetime.fromisoformat(mark["updated_at"]), mark["id"]


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, (SourceUnavailable, EngineUnavailable)):
        return True
    if isinstance(exc, ApiError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, TransportError)


class Sync:
    """One alias kept in step with the FAQ tables behind ES_FAQ_MYSQL_URL."""

    def __init__(self, settings: Settings, alias: str | None = None, client: Elasticsearch | None = None,
                 analyzer: Analyzer | None = None, embedder: Embedder | None = None):
        self.settings = settings
        self.alias = check_alias(alias or settings.index_alias, settings)
        self.client = client or make_client(settings)
        self.source = MySqlSource(settings)
        self.state = SyncState(self.client, self.alias, settings)
        self._analyzer, self._embedder = analyzer, embedder

    # Loaded on first use: an incremental run with nothing to write never pays for the model.
    @property
    def analyzer(self) -> Analyzer:
        self._analyzer = self._analyzer or Analyzer(self.settings, DictionaryStore(self.client, self.settings))
        self._analyzer.refresh()  # --follow runs for days: pick up dictionary changes
        return self._analyzer

    @property
    def embedder(self) -> Embedder:
        self._embedder = self._embedder or Embedder(self.settings)
        return self._embedder

    @cached_property
    def vectors(self) -> VectorCache:
        return VectorCache(self.client, self.settings, self.embedder)

    def _live_version(self) -> str:
        live = live_indices(self.client, self.alias)
        if len(live) != 1:
            raise IndexMissing(f"alias {self.alias} does not exist (or spans {len(live)} indices); "
                               "run `es-faq sync full` first")
        return live[0]

    def _lock(self, command: str, wait_s: float = 0.0, adopt: str | None = None) -> tuple[Lock, list[str]]:
        """The alias's writer lock, shared with `index load` and rollback, and the orphans it cleared."""
        return lock_alias(self.client, self.settings, self.alias, command, wait_s, adopt)

    def full(self, progress: bool = True, adopt: str | None = None) -> SyncReport:
        """Read a consistent snapshot into a new version, verify it, swap the alias, prune old versions.

        `adopt`: the owner of a writer lease taken for this run by the admin reindex."""
        started = time.monotonic()
        lock, orphans = self._lock("full", wait_s=self.settings.writer_lock_ttl_s, adopt=adopt)
        with lock:
            with self.source.snapshot() as snapshot:
                total, mark = snapshot.count(), snapshot.high_mark()
                records = lock.guard(self._counted(snapshot.records(), snapshot, total))
                loaded = build(self.client, self.settings, records, self.analyzer, self.embedder, alias=self.alias,
                               skip_bad=True, total=total, progress=progress, lock=lock,
                               meta={"source": self.source.url, "sync_watermark": mark})
        seconds = time.monotonic() - started
        return SyncReport("full", self.alias, loaded.index, upserted=loaded.faqs, skipped=loaded.skipped,
                          cleaned=snapshot.notes, watermark=mark, seconds=seconds,
                          extra={"questions": loaded.questions, "rows_read": snapshot.rows,
                                 "vectors_reused": loaded.vectors_reused, "vectors_embedded": loaded.vectors_embedded,
                                 "rows_per_s": round(snapshot.rows / max(seconds, 1e-9), 1),
                                 "previous": loaded.previous, "orphans_deleted": orphans})

    @staticmethod
    def _counted(records: Iterable, snapshot, total: int) -> Iterator:
        yield from records
        if snapshot.rows != total:  # raised before the alias moves, so the new version is dropped
            raise DataError(f"read {snapshot.rows} FAQ rows but MySQL counted {total}; the id column "
                            "(ES_FAQ_MYSQL_ID_COLUMN) must be unique. The live index was not changed.")

    def incremental(self) -> SyncReport:
        """Write the rows changed since the live version's watermark; move the mark after each written page."""
        started = time.monotonic()
        batch = self.settings.mysql_batch_size
        lock, _ = self._lock("incremental")
        with lock:
            version = self._live_version()
            report = SyncReport("incremental", self.alias, version)
            mark = self.state.watermark(version)
            if mark is None:
                raise IndexMissing(f"{version} has no sync watermark: it was not built by `es-faq sync full`. "
                                   "Run `es-faq sync full` once; incremental runs continue from there.")
            # Re-reading a window behind the mark catches rows whose transaction committed after a
            # newer row was already synced; unchanged rows are recognised by their hash and skipped.
            since = _key(mark)[0] - timedelta(seconds=self.settings.mysql_overlap_s)
            after = {"updated_at": since.isoformat(), "id": mark["id"]}
            while True:
                page = self.source.changed_since(after, batch)
                if page:
                    self._apply(version, page, report, lock, seen=mark)
                    after = page[-1].key
                    if _key(after) > _key(mark):
                        mark = after
                        lock.check()
                        self.state.save_watermark(version, mark)  # only once the page is written and refreshed
                if len(page) < batch:
                    break
        report.watermark = mark
        report.seconds = time.monotonic() - started
        return report

    def _apply(self, version: str, changes: list[Change], report: SyncReport, lock: Lock,
               seen: dict | None = None) -> None:
        """Upsert changed FAQs, delete deleted or now-invalid ones; rows whose hash matches cost nothing.

        Rows at or before `seen` (re-read in the overlap window) were reported already: not again."""
        docs = self.client.mget(index=version, ids=[str(c.record.id) for c in changes], source=["content_hash"])
        stored = {d["_id"]: (d.get("_source") or {}).get("content_hash") for d in docs["docs"] if d.get("found")}
        upserts: list[Faq] = []
        deletes: list[str] = []
        for change in changes:
            faq_id = str(change.record.id)
            news = seen is None or _key(change.key) > _key(seen)
            if news and not change.deleted and isinstance(change.record, BadRow):
                report.skipped.append(change.record)
            if change.deleted or isinstance(change.record, BadRow):
                # A row edited into an invalid state leaves the index too, as a full sync would.
                if faq_id in stored:
                    deletes.append(faq_id)
                continue
            if news:
                report.cleaned.extend(change.notes)
            if faq_id in stored and stored[faq_id] == content_hash(change.record):
                report.unchanged += 1
            else:
                upserts.append(change.record)
        self._write(version, upserts, deletes, lock)
        report.upserted += len(upserts)
        report.deleted += len(deletes)

    def _write(self, version: str, upserts: list[Faq], deletes: list[str], lock: Lock) -> None:
        actions = faq_documents(upserts, self.analyzer, self.vectors) if upserts else []
        actions += [{"_op_type": "delete", "_id": faq_id} for faq_id in deletes]
        if not actions:
            return
        lock.check()
        bulk_write(self.client.options(request_timeout=120), actions, index=version, chunk_size=500,
                   then="; the watermark was not moved", missing_deletes_ok=True)
        self.client.indices.refresh(index=version)

    def check(self, repair: bool = False) -> dict:
        """Compare MySQL with the live version by id and content hash; `repair` rewrites what differs."""
        started = time.monotonic()
        lock, _ = self._lock("check", wait_s=self.settings.writer_lock_ttl_s)
        with lock:
            version = self._live_version()
            wanted: dict[str, str] = {}
            bad: list[BadRow] = []
            with self.source.snapshot() as snapshot:
                for record in snapshot.records():
                    if isinstance(record, BadRow):
                        bad.append(record)
                    else:
                        wanted[record.id] = content_hash(record)
            stored = {hit["_id"]: hit["_source"].get("content_hash") for hit in helpers.scan(
                self.client, index=version, size=1000, query={"_source": ["content_hash"]})}
            missing = sorted(wanted.keys() - stored.keys())
            extra = sorted(stored.keys() - wanted.keys())
            changed = sorted(i for i in wanted.keys() & stored.keys() if wanted[i] != stored[i])
            out = {"alias": self.alias, "index": version, "mysql_rows": snapshot.rows, "mysql_valid": len(wanted),
                   "mysql_skipped": len(bad), "skipped_rows": [str(b) for b in bad[:LISTED]],
                   "es_docs": len(stored), "differences": len(missing) + len(extra) + len(changed),
                   "missing_in_es": missing[:LISTED], "extra_in_es": extra[:LISTED], "changed": changed[:LISTED]}
            if repair and out["differences"]:
                # An index built before content_hash existed lacks the field; adding one is safe.
                self.client.indices.put_mapping(index=version, properties={"content_hash": {"type": "keyword"}})
                fixed = SyncReport("repair", self.alias, version)
                todo = missing + changed
                for start in range(0, len(todo), self.settings.mysql_batch_size):
                    self._apply(version, self.source.fetch(todo[start:start + self.settings.mysql_batch_size]),
                                fixed, lock)
                for start in range(0, len(extra), 500):
                    self._write(version, [], extra[start:start + 500], lock)
                fixed.deleted += len(extra)
                out["repaired"] = {"upserted": fixed.upserted, "deleted": fixed.deleted}
        out["seconds"] = round(time.monotonic() - started, 2)
        return out

    def follow(self, interval_s: float, stop: threading.Event, echo: Callable[[str], None],
               on_report: Callable[[SyncReport], None]) -> None:
        """Incremental runs every `interval_s` until `stop`; outages back off up to ES_FAQ_MYSQL_RETRY_MAX_S."""
        failures = 0
        while not stop.is_set():
            delay = interval_s
            try:
                report = self.incremental()
                failures = 0
                if report.changed:
                    on_report(report)
            except SyncBusy:
                pass  # another run is at work; it will have done this cycle's job
            except Exception as exc:
                if not _retryable(exc):
                    raise
                failures += 1
                delay = min(interval_s * 2 ** failures, self.settings.mysql_retry_max_s)
                message = exc.message if isinstance(exc, EsFaqError) else unreachable(self.settings, exc).message
                echo(f"{message} Retrying in {delay:.1f} s (attempt {failures}).")
            stop.wait(delay)
