"""Sync state in Elasticsearch, beside the index it describes: each version's watermark, and who holds
the alias's writer lock (taken with es_faq/kb/index.py `lock_alias`)."""

from __future__ import annotations

from elasticsearch import Elasticsearch

from ..config.settings import Settings
from ..kb import lock as writer_lock
from ..kb.lock import now_ms, when


class SyncState:
    """`<alias>-sync-state`: named so that it never matches a version name of any alias."""

    def __init__(self, client: Elasticsearch, alias: str, settings: Settings):
        self.client, self.alias, self.settings = client, alias, settings
        self.index = writer_lock.state_index(alias)
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            writer_lock.ensure_state_index(self.client, self.alias, self.settings)
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
                          document={"mark": mark, "saved_at": when(now_ms())})

    def holder(self) -> dict | None:
        """Who holds the alias's writer lock now, or None; creates nothing."""
        return writer_lock.holder(self.client, self.alias)
