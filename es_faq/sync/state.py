"""Sync state in Elasticsearch, beside the index it describes: each version's watermark and one lock."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Iterable, Iterator

from elasticsearch import ApiError, BadRequestError, ConflictError, Elasticsearch, NotFoundError, TransportError

from ..config import Settings
from ..errors import LockLost, SyncBusy

LOCK_ID = "lock"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


class SyncState:
    """`<alias>-sync-state`: named so that it never matches the `<alias>-<digits>` version pattern."""

    def __init__(self, client: Elasticsearch, alias: str, settings: Settings):
        self.client, self.alias, self.settings = client, alias, settings
        self.index = f"{alias}-sync-state"
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        try:
            self.client.indices.create(index=self.index, mappings={"dynamic": False, "properties": {}}, settings={
                "number_of_shards": 1, "number_of_replicas": self.settings.index_replicas})
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":  # another run created it first
                raise
        self._ready = True

    def watermark(self, version: str) -> dict | None:
        """Where incremental runs into `version` continue: its last saved mark, else the one its full sync read.

        A read: creates nothing (the state index may not exist yet)."""
        doc = self.client.options(ignore_status=404).get(index=self.index, id=f"watermark:{version}")
        if doc.get("found"):
            return doc["_source"]["mark"]
        mapping = self.client.indices.get_mapping(index=version).body
        return next(iter(mapping.values()))["mappings"].get("_meta", {}).get("es_faq", {}).get("sync_watermark")

    def save_watermark(self, version: str, mark: dict) -> None:
        self._ensure()
        self.client.index(index=self.index, id=f"watermark:{version}",
                          document={"mark": mark, "saved_at": _when(_now_ms())})

    def holder(self) -> dict | None:
        """Who holds the lock now (command, host, pid, renewed_at, expires_at), or None; creates nothing."""
        doc = self.client.options(ignore_status=404).get(index=self.index, id=LOCK_ID)
        if not doc.get("found") or doc["_source"]["expires_at"] < _now_ms():
            return None
        held = doc["_source"]
        return {"command": held["command"], "host": held["host"], "pid": held["pid"],
                "renewed_at": held["renewed_at"], "expires_at": _when(held["expires_at"])}

    def lock(self, command: str, wait_s: float = 0.0) -> "Lock":
        """The one sync lock of this alias, taken now (or within `wait_s`), else SyncBusy."""
        self._ensure()
        lock = Lock(self, command)
        lock.acquire(wait_s)
        return lock


class Lock:
    """A lease in Elasticsearch: created with op_type=create, renewed by a heartbeat, taken over once expired.

    Every write is conditional on the sequence number last seen, so two runs can never both
    believe they hold it. Expiry compares the holders' clocks, which must agree within the TTL."""

    def __init__(self, state: SyncState, command: str):
        self.state, self.command = state, command
        self.client, self.ttl_s = state.client, state.settings.mysql_lock_ttl_s
        self.owner = uuid.uuid4().hex
        self.lost = False
        self._seq: dict = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _document(self) -> dict:
        now = _now_ms()
        return {"owner": self.owner, "command": self.command, "host": socket.gethostname(), "pid": os.getpid(),
                "renewed_at": _when(now), "expires_at": now + int(self.ttl_s * 1000)}

    def _took(self, response) -> None:
        self._seq = {"if_seq_no": response["_seq_no"], "if_primary_term": response["_primary_term"]}

    def acquire(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        index = self.state.index
        while True:
            try:
                self._took(self.client.index(index=index, id=LOCK_ID, document=self._document(), op_type="create"))
                break
            except ConflictError:
                pass
            held = self.client.options(ignore_status=404).get(index=index, id=LOCK_ID)
            if not held.get("found"):
                continue  # released between our two requests: try to create it again
            if held["_source"]["expires_at"] < _now_ms():
                try:  # the holder died or hung: take the lease over, unless someone else just did
                    self._took(self.client.index(index=index, id=LOCK_ID, document=self._document(),
                                                 if_seq_no=held["_seq_no"], if_primary_term=held["_primary_term"]))
                    break
                except ConflictError:
                    pass
            if time.monotonic() >= deadline:
                h = held["_source"]
                raise SyncBusy(
                    f"another sync ({h['command']}, pid {h['pid']} on {h['host']}) "
                    f"holds the lock on {self.state.alias} until {_when(h['expires_at'])}; "
                    "run again later. A crashed holder's lock expires on its own, ES_FAQ_MYSQL_LOCK_TTL_S "
                    "after its last renewal.")
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self._heartbeat = threading.Thread(target=self._renew_loop, name="sync-lock-heartbeat", daemon=True)
        self._heartbeat.start()

    def _renew_loop(self) -> None:
        expires = _now_ms() + int(self.ttl_s * 1000)
        while not self._stop.wait(self.ttl_s / 3):
            try:
                with self._guard:
                    document = self._document()
                    self._took(self.client.index(index=self.state.index, id=LOCK_ID, document=document, **self._seq))
                expires = document["expires_at"]
            except (ConflictError, NotFoundError):
                self.lost = True
                return
            except Exception:  # Elasticsearch briefly unreachable: keep trying while the lease lasts
                if _now_ms() > expires:
                    self.lost = True
                    return

    def check(self) -> None:
        """Raise LockLost if the lease was taken over; call before every write."""
        if self.lost:
            raise LockLost(f"lost the sync lock on {self.state.alias}: it expired and another run took it over. "
                           "Stopped before writing more; if Elasticsearch is slow to answer, raise "
                           "ES_FAQ_MYSQL_LOCK_TTL_S.")

    def guard(self, records: Iterable) -> Iterator:
        """Pass records through, stopping the consumer as soon as the lock is lost."""
        for record in records:
            self.check()
            yield record
        self.check()

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat:
            self._heartbeat.join()
        if not self.lost:
            try:
                with self._guard:
                    self.client.options(ignore_status=(404, 409)).delete(index=self.state.index, id=LOCK_ID,
                                                                         **self._seq)
            except (TransportError, ApiError):
                pass  # Elasticsearch is gone; the lease expires on its own after the TTL

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
