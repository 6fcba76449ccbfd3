"""Vectors already computed, kept in Elasticsearch and reused by every build and sync.

A vector is keyed by what determines it: the embedding model's files (their sha256), its token
limit and the exact text embedded. Rebuilding or re-syncing an unchanged knowledge base then embeds
nothing; a changed text or model misses the cache and is embedded. The model must give a text the
same vector alone or in any batch (a static-INT8 or fp32 model; tests/test_embed.py), so a cached
vector is exactly the one a fresh embedding would give. Vectors are stored as float32 bytes
(base64) in `_source` only: the cache index holds no vector search structures.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import numpy as np
from elasticsearch import Elasticsearch, helpers

from ..config.settings import Settings
from ..engine.client import bulk_write, ensure_small_index
from ..models.onnx import runtime_file
from ..search.analyze import Analysis, Analyzer
from ..search.embed import Embedder

# `v`: the vector's float32 bytes, base64 (a binary field: kept, never indexed).
PROPERTIES = {"model": {"type": "keyword"}, "model_key": {"type": "keyword"}, "v": {"type": "binary"}}
LOOKUP_CHUNK = 1000  # ids per _mget


def embedded_text(analysis: Analysis) -> str:
    """What a question's vector is computed from: its text after rewrites and filler removal."""
    return analysis.text or analysis.normalized


@dataclass
class CacheStats:
    reused: int = 0
    embedded: int = 0

    @property
    def texts(self) -> int:
        return self.reused + self.embedded


class VectorCache:
    """`encode(texts)` as Embedder.encode (documents, not queries), through the cache index."""

    def __init__(self, client: Elasticsearch, settings: Settings, embedder: Embedder):
        self.client = client.options(request_timeout=max(settings.es_timeout_s, 60))
        self.settings = settings
        self.embedder = embedder
        self.index = settings.vector_cache_index
        # The file that runs (INT8 on CPU, fp32 on CUDA where a manifest has both) and the truncation.
        identity = [embedder.manifest.files, runtime_file(embedder.manifest, settings).name,
                    embedder.tokenizer.truncation]
        self.model_key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.stats = CacheStats()
        self._ready = False

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_key}\0{text}".encode()).hexdigest()

    def _ensure_index(self) -> None:
        if self._ready:
            return
        ensure_small_index(self.client, self.index, PROPERTIES)
        self._ready = True

    def encode(self, texts: list[str]) -> np.ndarray:
        if not self.settings.vector_cache_enabled:
            self.stats.embedded += len(texts)
            return self.embedder.encode(texts)
        self._ensure_index()
        out = np.zeros((len(texts), self.embedder.dims), dtype=np.float32)
        keys = [self.key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            response = self.client.mget(index=self.index, ids=unique[start:start + LOOKUP_CHUNK], source=["v"])
            for doc in response["docs"]:
                if doc.get("found"):
                    found[doc["_id"]] = np.frombuffer(base64.b64decode(doc["_source"]["v"]), dtype=np.float32)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            fresh_texts = list(dict.fromkeys(texts[i] for i in missing))
            vectors = self.embedder.encode(fresh_texts)
            fresh = {self.key(t): v for t, v in zip(fresh_texts, vectors, strict=True)}
            self._store(fresh)
            found.update(fresh)
            self.stats.embedded += len(fresh_texts)
        self.stats.reused += len(texts) - len(missing)
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out

    def _store(self, vectors: dict[str, np.ndarray]) -> None:
        model = self.embedder.manifest.name
        actions = ({"_id": key, "model": model, "model_key": self.model_key,
                    "v": base64.b64encode(vector.astype("<f4").tobytes()).decode()} for key, vector in vectors.items())
        bulk_write(self.client, actions, index=self.index, chunk_size=1000, verb="refused",
                   what=f"vectors for the cache {self.index}",
                   then="; check the cluster, or set vector_cache_enabled=false")

    def counts(self) -> dict[str, int]:
        """Cached vectors per model_key (the current one is `model_key`)."""
        if not self.client.indices.exists(index=self.index):
            return {}
        self.client.indices.refresh(index=self.index)
        response = self.client.search(index=self.index, size=0, aggs={"keys": {"terms": {"field": "model_key"}}})
        return {b["key"]: b["doc_count"] for b in response["aggregations"]["keys"]["buckets"]}

    def prune(self, analyzer: Analyzer) -> int:
        """Delete the cached vectors no index uses: those of other models or model files, and those of
        texts that no FAQ index of the cluster holds (every kept version of every alias counts; a
        failed or killed load leaves vectors of texts that were never served)."""
        if not self.client.indices.exists(index=self.index):
            return 0
        used = self.used_keys(analyzer)
        # Not _delete_by_query: the local distribution has no reindex module.
        cached = helpers.scan(self.client, index=self.index, source=["model_key"], query={"query": {"match_all": {}}})
        stale = (hit["_id"] for hit in cached
                 if hit["_source"].get("model_key") != self.model_key or hit["_id"] not in used)
        deleted, _ = helpers.bulk(self.client, ({"_op_type": "delete", "_id": key} for key in stale),
                                  index=self.index, chunk_size=1000, refresh=True, stats_only=True)
        return int(deleted)

    def used_keys(self, analyzer: Analyzer) -> set[str]:
        """The cache keys of every question text in the cluster's open FAQ indices (those whose mapping
        es-faq wrote: `_meta.es_faq`), under the current model. The embedded text is the stored one
        analysed with today's dictionaries (an index built under other rewrites may lose a vector,
        which only costs its embedding again); a closed index's texts cannot be read."""
        mappings = self.client.indices.get_mapping(index="*", expand_wildcards="open").body
        names = sorted(name for name, body in mappings.items()
                       if "es_faq" in (body.get("mappings", {}).get("_meta") or {}))
        used: set[str] = set()
        for start in range(0, len(names), 50):  # a comma-separated list, short enough for a URL
            for hit in helpers.scan(self.client, index=",".join(names[start:start + 50]), source=["questions.text"],
                                    query={"query": {"match_all": {}}}):
                used.update(self.key(embedded_text(analyzer.analyze(q["text"])))
                            for q in hit["_source"].get("questions", []) if "text" in q)
        return used
