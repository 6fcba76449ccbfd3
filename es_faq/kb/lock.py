"""One writer at a time per alias: a lease document in `<alias>-sync-state`, taken with op_type=create.

Every command that changes an alias takes it (index load and rollback, each sync, the admin
reindex), so two of them can never build, swap or prune one alias at once."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

from elasticsearch import ApiError, BadRequestError, ConflictError, Elasticsearch, NotFoundError, TransportError

from ..config.settings import Settings
from ..errors import LockLost, SyncBusy

LOCK_ID = "lock"
STATE_SUFFIX = "-sync-state"


def state_index(alias: str) -> str:
    """`<alias>-sync-state`: the lock and the sync watermarks. It never matches a version name
    (es_faq/kb/index.py), so no alias's versions, prune or rollback can see another's state."""
    return alias + STATE_SUFFIX


def now_ms() -> int:
    return int(time.time() * 1000)


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def ensure_state_index(client: Elasticsearch, alias: str, settings: Settings) -> None:
    try:
        client.indices.create(index=state_index(alias), mappings={"dynamic": False, "properties": {}}, settings={
            "number_of_shards": 1, "number_of_replicas": settings.index_replicas})
    except BadRequestError as exc:
        if exc.error != "resource_already_exists_exception":  # another run created it first
            raise


def holder(client: Elasticsearch, alias: str) -> dict | None:
    """Who holds the lock now (command, host, pid, renewed_at, expires_at), or None; creates nothing."""
    doc = client.options(ignore_status=404).get(index=state_index(alias), id=LOCK_ID)
    if not doc.get("found") or doc["_source"]["expires_at"] < now_ms():
        return None
    held = doc["_source"]
    return {"command": held["command"], "host": held["host"], "pid": held["pid"],
            "renewed_at": held["renewed_at"], "expires_at": when(held["expires_at"])}


def acquire(client: Elasticsearch, settings: Settings, alias: str, command: str, wait_s: float = 0.0,
            adopt: str | None = None) -> Lock:
    """The writer lock of `alias`, taken now (or within `wait_s`), else SyncBusy.

    `adopt` names the owner of a lease another process took for this one (the admin reindex
    hands its lease to the sync it starts), so no other writer can slip in between."""
    ensure_state_index(client, alias, settings)
    lock = Lock(client, settings, alias, command)
    lock.acquire(wait_s, adopt)
    return lock


class Lock:
    """A lease in Elasticsearch: created with op_type=create, renewed by a heartbeat, taken over once expired.

    Every write is conditional on the sequence number last seen, so two runs can never both
    believe they hold it. Expiry compares the holders' clocks, which must agree within the TTL."""

    def __init__(self, client: Elasticsearch, settings: Settings, alias: str, command: str, *,
                 index: str | None = None, owner: str | None = None):
        """`alias`'s writer lock; or, with `index`, the one lease of that index (the admin jobs'), named `alias`
        in messages, whose owner id may be chosen (`owner`, a job's id)."""
        self.client, self.alias, self.command = client, alias, command
        self.index = index or state_index(alias)
        self.ttl_s = settings.writer_lock_ttl_s
        self.owner = owner or uuid.uuid4().hex
        self.lost = False
        self.expires_ms = 0  # when the lease last written runs out, by this host's clock
        self._seq: dict = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._handed_off = False

    def _document(self) -> dict:
        now = now_ms()
        return {"owner": self.owner, "command": self.command, "host": socket.gethostname(), "pid": os.getpid(),
                "renewed_at": when(now), "expires_at": now + int(self.ttl_s * 1000)}

    def _write(self, **conditions) -> None:
        """Write the lease (conditionally), and remember what it was written as."""
        document = self._document()
        response = self.client.index(index=self.index, id=LOCK_ID, document=document, **conditions)
        self._seq = {"if_seq_no": response["_seq_no"], "if_primary_term": response["_primary_term"]}
        self.expires_ms = document["expires_at"]

    def _take_over(self, held) -> bool:
        """Overwrite the lease last seen as `held`, unless someone else wrote it since."""
        try:
            self._write(if_seq_no=held["_seq_no"], if_primary_term=held["_primary_term"])
            return True
        except ConflictError:
            return False

    def acquire(self, wait_s: float, adopt: str | None = None) -> None:
        deadline = time.monotonic() + wait_s
        if adopt:
            held = self.client.options(ignore_status=404).get(index=self.index, id=LOCK_ID)
            if held.get("found") and held["_source"]["owner"] == adopt:
                self.owner = adopt
                if self._take_over(held):
                    return self._start_heartbeat()
        while True:
            try:
                self._write(op_type="create")
                break
            except ConflictError:
                pass
            held = self.client.options(ignore_status=404).get(index=self.index, id=LOCK_ID)
            if not held.get("found"):
                continue  # released between our two requests: try to create it again
            if held["_source"]["expires_at"] < now_ms() and self._take_over(held):
                break  # the holder died or hung: its lease is ours now
            if time.monotonic() >= deadline:
                h = held["_source"]
                raise SyncBusy(
                    f"another writer ({h['command']}, pid {h['pid']} on {h['host']}) "
                    f"holds the lock on {self.alias} until {when(h['expires_at'])}; "
                    "run again later. A crashed holder's lock expires on its own, ES_FAQ_WRITER_LOCK_TTL_S "
                    "after its last renewal.")
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        self._heartbeat = threading.Thread(target=self._renew_loop, name="writer-lock-heartbeat", daemon=True)
        self._heartbeat.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if self._expired():
                return
            try:
                with self._guard:
                    self._write(**self._seq)
            except (ConflictError, NotFoundError):
                self.lost = True
                return
            except Exception:  # Elasticsearch briefly unreachable: keep trying while the lease lasts
                if self._expired():
                    return

    def _expired(self) -> bool:
        """Whether the lease ran out before it was renewed (a process stopped or starved past the TTL):
        then another writer may have taken it and deleted what this one was building."""
        if now_ms() > self.expires_ms:
            self.lost = True
        return self.lost

    def check(self) -> None:
        """Raise LockLost if the lease ran out or was taken over; call before every write."""
        if self.lost or self._expired():
            raise LockLost(f"lost the writer lock on {self.alias}: its lease ran out (this process was stopped, "
                           "starved or could not reach Elasticsearch for ES_FAQ_WRITER_LOCK_TTL_S) and another "
                           "writer may have taken it over. Stopped before writing more; run it again, and if "
                           "Elasticsearch is slow to answer, raise ES_FAQ_WRITER_LOCK_TTL_S.")

    def guard(self, records: Iterable) -> Iterator:
        """Pass records through, stopping the consumer as soon as the lock is lost."""
        for record in records:
            self.check()
            yield record
        self.check()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat and self._heartbeat is not threading.current_thread():
            self._heartbeat.join()

    def hand_off(self) -> str:
        """Stop renewing without releasing; the owner id for the process that adopts the lease."""
        self._stop_heartbeat()
        self._handed_off = True
        return self.owner

    def release(self, handed_off_too: bool = False) -> None:
        """Delete the lease if still ours; `handed_off_too` also takes back one handed off (its taker never started)."""
        self._stop_heartbeat()
        if self.lost or (self._handed_off and not handed_off_too):
            return
        try:
            with self._guard:
                self.client.options(ignore_status=(404, 409)).delete(index=self.index, id=LOCK_ID, **self._seq)
        except (TransportError, ApiError):
            pass  # Elasticsearch is gone; the lease expires on its own after the TTL

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
