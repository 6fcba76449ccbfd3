"""Versioned FAQ indices behind an alias: build a new version, verify it, swap atomically, prune."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from elasticsearch import Elasticsearch, NotFoundError
from tqdm import tqdm

from ..config.settings import DATA_ROOT, Settings
from ..engine.client import bulk_write, live_indices
from ..errors import ConfigError, DataError, EsFaqError, IndexMissing
from ..search.analyze import Analyzer
from ..search.embed import Embedder
from .faq import BadRecord, Faq
from .lock import STATE_SUFFIX, Lock, acquire
from .vectors import VectorCache, embedded_text

MAPPINGS_DIR = DATA_ROOT / "mappings"
# A version is exactly `<alias>-YYYYmmdd-HHMMSS-ffffff`: of fixed length, so the name says which
# alias it belongs to. `faq-2-20250101-...` is never a version of `faq`, nor is `faq-sync-state`.
VERSION_SUFFIX = re.compile(r"-\d{8}-\d{6}-\d{6}")
ALIAS_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,199}")


def faq_body(settings: Settings, dims: int, meta: dict) -> dict:
    """Settings and mappings from mappings/faq.json, fitted to the model and the build."""
    body = json.loads((MAPPINGS_DIR / "faq.json").read_text(encoding="utf-8"))
    index = body["settings"]["index"]
    index.update(number_of_shards=settings.index_shards, number_of_replicas=0, refresh_interval="-1")
    body["mappings"]["properties"]["questions"]["properties"]["vector"]["dims"] = dims
    body["mappings"]["_meta"] = {"es_faq": meta}
    return body


def content_hash(faq: Faq) -> str:
    """A digest of what a FAQ says, stored with its document so `es-faq sync check` can compare."""
    content = [faq.question, faq.similar_questions, faq.answer, faq.category, faq.enabled]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


def vector_fields(vectors: np.ndarray) -> list[list[float]]:
    """Vectors as a document stores them: short decimals (6 places), rounded for a whole batch at once."""
    return np.round(vectors.astype(np.float64), 6).tolist()


def faq_documents(faqs: list[Faq], analyzer: Analyzer, vectors: VectorCache) -> list[dict]:
    """Analyse and embed a batch of FAQs into index documents, one per FAQ, a nested entry per question;
    vectors computed before (an unchanged text under the same model) come from the cache."""
    analyses = [analyzer.analyze(text) for faq in faqs for text in faq.texts]
    embedded = vector_fields(vectors.encode([embedded_text(a) for a in analyses]))
    docs, row = [], 0
    for faq in faqs:
        questions = []
        for position, text in enumerate(faq.texts):
            tokens = analyses[row].tokens
            questions.append({"text": text, "is_standard": position == 0, "tokens": " ".join(tokens),
                              "vector": embedded[row]})
            row += 1
        docs.append({"_id": faq.id, "faq_id": faq.id, "question": faq.question, "answer": faq.answer,
                     "category": faq.category, "enabled": faq.enabled, "updated_at": faq.updated_at,
                     "content_hash": content_hash(faq), "questions": questions})
    return docs


@dataclass
class LoadReport:
    index: str
    alias: str
    faqs: int = 0
    questions: int = 0
    skipped: list[BadRecord] = field(default_factory=list)
    seconds: float = 0.0
    vectors_reused: int = 0  # question texts whose vector came from the cache
    vectors_embedded: int = 0
    previous: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    merge_seconds: float | None = None  # index_force_merge: the merge to one segment, within `seconds`
    vocabulary_words: int | None = None  # written for the typo stage (load_file), when it is on
    embed_model: str = ""
    # The embedder of the version this one replaced, when it was another: an upgrade re-embeds every text.
    embed_model_before: str | None = None

    def as_dict(self) -> dict:
        return {"index": self.index, "alias": self.alias, "faqs": self.faqs, "questions": self.questions,
                "skipped": len(self.skipped), "skipped_lines": [str(b) for b in self.skipped[:20]],
                "seconds": round(self.seconds, 1),
                "questions_per_s": round(self.questions / self.seconds, 1) if self.seconds else None,
                "vectors_reused": self.vectors_reused, "vectors_embedded": self.vectors_embedded,
                "previous": self.previous, "orphans_deleted": self.orphans_deleted,
                **({"merge_seconds": round(self.merge_seconds, 1)} if self.merge_seconds is not None else {}),
                **({} if self.vocabulary_words is None else {"vocabulary_words": self.vocabulary_words}),
                "embed_model": self.embed_model, **self._upgrade()}

    def _upgrade(self) -> dict:
        if not self.embed_model_before or self.embed_model_before == self.embed_model:
            return {}
        return {"embed_model_before": self.embed_model_before,
                "note": f"the embedder changed from {self.embed_model_before} to {self.embed_model}: "
                        f"{self.vectors_embedded} question texts were embedded again ({self.seconds:.0f} s in all)"}


def _batches(records: Iterable[Faq | BadRecord], size: int, report: LoadReport, skip_bad: bool,
             bar: tqdm) -> Iterator[list[Faq]]:
    batch: list[Faq] = []
    for record in records:
        bar.update(1)
        if isinstance(record, BadRecord):
            if not skip_bad:
                raise DataError(f"{record}. Fix the line, or pass --skip-bad to load the rest; "
                                "the live index was not changed.")
            report.skipped.append(record)
            continue
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_alias(alias: str, settings: Settings) -> str:
    """`alias` if it can name a family of versions and a state index that no other alias (nor es-faq's
    own indices: the dictionaries, the vocabulary, the vector cache, the query log, previews) can claim."""
    clash = settings.reserved(alias)
    if clash:
        raise ConfigError(f"alias {alias[:80]!r} is one of es-faq's own indices, {clash}: choose another alias")
    if not ALIAS_NAME.fullmatch(alias) or alias.endswith(STATE_SUFFIX) or VERSION_SUFFIX.search(alias):
        raise ConfigError(f"alias {alias[:80]!r} is not usable: use 1 to 200 of a-z 0-9 _ . - (starting with a "
                          f"letter or digit), not ending in {STATE_SUFFIX} nor containing a -YYYYmmdd-HHMMSS-ffffff "
                          "version stamp")
    return alias


def is_version(alias: str, name: str) -> bool:
    return name.startswith(alias) and VERSION_SUFFIX.fullmatch(name[len(alias):]) is not None


def new_version_name(alias: str) -> str:
    return f"{alias}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}"


def lock_alias(client: Elasticsearch, settings: Settings, alias: str, command: str, wait_s: float = 0.0,
               adopt: str | None = None) -> tuple[Lock, list[str]]:
    """The alias's writer lock (es_faq/kb/lock.py), and the orphans deleted right after taking it.

    Under the lock no other build of this alias runs, so an incomplete version that is not live
    is a killed build's leftover: every writer clears them first."""
    lock = acquire(client, settings, check_alias(alias, settings), command, wait_s, adopt)
    try:
        return lock, drop_orphans(client, alias)
    except BaseException:
        lock.release()
        raise


def build(client: Elasticsearch, settings: Settings, records: Iterable[Faq | BadRecord],
          analyzer: Analyzer, embedder: Embedder, *, alias: str | None = None, skip_bad: bool = False,
          total: int | None = None, meta: dict | None = None, progress: bool = True,
          lock: Lock | None = None) -> LoadReport:
    """Write every FAQ into a new index version and point the alias at it only once it is complete.

    Takes the alias's writer lock (waiting up to its TTL) unless the caller holds it as `lock`."""
    alias = alias or settings.index_alias
    if lock is None:
        held, orphans = lock_alias(client, settings, alias, "index load", wait_s=settings.writer_lock_ttl_s)
        with held:
            report = build(client, settings, records, analyzer, embedder, alias=alias, skip_bad=skip_bad,
                           total=total, meta=meta, progress=progress, lock=held)
        report.orphans_deleted = orphans
        return report
    started = time.monotonic()
    name = new_version_name(alias)
    before = (index_meta(client, alias) or {}).get("model")
    meta = {"model": embedder.manifest.name, "created": datetime.now(timezone.utc).isoformat(), **(meta or {})}
    # Marked "building" until verified: a killed build leaves an index that prune and rollback
    # must treat as garbage, never as a version to keep or return to.
    client.indices.create(index=name, **faq_body(settings, embedder.dims, {**meta, "state": "building"}))
    report = LoadReport(index=name, alias=alias, embed_model=embedder.manifest.name, embed_model_before=before)
    vectors = VectorCache(client, settings, embedder)
    try:
        with tqdm(total=total, unit="faq", desc=f"indexing {name}", disable=not progress) as bar:
            for batch in _batches(lock.guard(records), 256, report, skip_bad, bar):
                docs = faq_documents(batch, analyzer, vectors)
                report.faqs += bulk_write(client.options(request_timeout=120), docs, index=name, chunk_size=500)
                report.questions += sum(len(d["questions"]) for d in docs)
                elapsed = time.monotonic() - started
                bar.set_postfix(texts_per_s=f"{report.questions / elapsed:.0f}" if elapsed else "-",
                                reused=f"{vectors.stats.reused / max(vectors.stats.texts, 1):.0%}")
        if settings.index_force_merge:
            # Before the replicas exist: they copy the merged segments instead of merging themselves.
            merging = time.monotonic()
            client.indices.refresh(index=name)
            client.options(request_timeout=max(settings.es_timeout_s, 3600)).indices.forcemerge(
                index=name, max_num_segments=1, wait_for_completion=True)
            report.merge_seconds = time.monotonic() - merging
        client.indices.put_settings(index=name, settings={"index": {
            "refresh_interval": "1s", "number_of_replicas": settings.index_replicas}})
        client.indices.refresh(index=name)
        stored = client.count(index=name)["count"]
        if stored != report.faqs:
            raise EsFaqError(f"index {name} holds {stored} FAQs, expected {report.faqs}; alias not moved")
        if report.faqs == 0:
            raise DataError("no valid FAQ in the input; the live index was not changed")
        client.indices.put_mapping(index=name, meta={"es_faq": {**meta, "state": "complete"}})
        lock.check()  # a build that lost its lease (stalled past the TTL) must not move the alias
        report.previous = swap_alias(client, alias, name)
    except BaseException as exc:
        # A half-built version must never be served, nor linger to be mistaken for a good one.
        client.options(ignore_status=404).indices.delete(index=name)
        if isinstance(exc, Exception):
            # A writer stalled past its lease finds its version deleted by the next writer (or
            # re-created by its own late bulk request): say so, not the error that followed.
            lock.check()
        raise
    prune(client, alias, settings.index_keep_versions)
    report.seconds = time.monotonic() - started
    report.vectors_reused, report.vectors_embedded = vectors.stats.reused, vectors.stats.embedded
    return report


def load_file(settings: Settings, path: Path, *, alias: str | None = None, skip_bad: bool = False) -> LoadReport:
    """`es-faq index load`: a new version of the alias from a JSONL knowledge base, analysed with the
    stored dictionaries, and its typo-correction vocabulary when that stage is on."""
    from ..engine.client import make_client
    from ..search.dictionary import DictionaryStore
    from ..search.vocabulary import VocabularyStore
    from .faq import count_lines, read_jsonl

    embedder = Embedder(settings)  # a missing model fails before anything is asked of Elasticsearch
    client = make_client(settings)
    report = build(client, settings, read_jsonl(path), Analyzer(settings, DictionaryStore(client, settings)),
                   embedder, alias=alias, skip_bad=skip_bad, total=count_lines(path),
                   meta={"source": str(path.resolve())})
    if settings.typo_correction:  # the new version's vocabulary, ready before the first search asks for it
        report.vocabulary_words = len(VocabularyStore(client, settings).write(report.index))
    return report


def swap_alias(client: Elasticsearch, alias: str, index: str) -> list[str]:
    """Move the alias to `index` in one atomic request; return what it pointed to before."""
    previous = live_indices(client, alias)
    actions = [{"remove": {"index": old, "alias": alias}} for old in previous]
    actions.append({"add": {"index": index, "alias": alias}})
    client.indices.update_aliases(actions=actions)
    return previous


def versions(client: Elasticsearch, alias: str) -> list[dict]:
    """Every version of `alias`, oldest first, with its FAQ count, whether it is live and complete."""
    live = set(live_indices(client, alias))
    # The wildcard also reaches other aliases' indices (`faq-2-...` for `faq`): only exact names count.
    metas = client.indices.get_mapping(index=f"{alias}-*", expand_wildcards="open").body
    state = {name: body["mappings"].get("_meta", {}).get("es_faq", {}).get("state")
             for name, body in metas.items() if is_version(alias, name)}
    if not state:
        return []
    rows = client.cat.indices(index=",".join(state), format="json", h="index,creation.date.string").body
    assert isinstance(rows, list)  # format=json: parsed rows, not text
    created = {r["index"]: r["creation.date.string"] for r in rows}
    # _count counts FAQs; the cat API's docs.count adds every nested question as a Lucene doc.
    # Versions built before the state marker existed have none and count as complete.
    return [{"index": name, "faqs": _faq_count(client, name), "created": created.get(name),
             "live": name in live, "complete": state[name] != "building"} for name in sorted(state)]



def _faq_count(client: Elasticsearch, name: str) -> int | None:
    """FAQs in a version; None while its shards cannot be searched yet (a build that has just begun)."""
    response = client.options(ignore_status=503).count(index=name)
    return response["count"] if response.meta.status == 200 else None


def prune(client: Elasticsearch, alias: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete versions, never the live one."""
    old = [v["index"] for v in versions(client, alias) if v["complete"] and not v["live"]]
    doomed = old[:max(0, len(old) - (keep - 1))]
    for name in doomed:
        client.indices.delete(index=name)
    return doomed


def drop_orphans(client: Elasticsearch, alias: str) -> list[str]:
    """Delete the incomplete versions (killed builds); only safe under the writer lock (lock_alias)."""
    doomed = [v["index"] for v in versions(client, alias) if not v["complete"] and not v["live"]]
    for name in doomed:
        client.options(ignore_status=404).indices.delete(index=name)
    return doomed


def rollback(client: Elasticsearch, settings: Settings, alias: str) -> dict:
    """Point the alias back to the newest version older than the live one (under the writer lock)."""
    lock, orphans = lock_alias(client, settings, alias, "index rollback", wait_s=settings.writer_lock_ttl_s)
    with lock:
        rows = versions(client, alias)
        live = [r["index"] for r in rows if r["live"]]
        if not live:
            raise IndexMissing(f"alias {alias} does not exist; load an index first (`es-faq index load`)")
        older = [r["index"] for r in rows if r["index"] < live[0] and r["complete"]]
        if not older:
            raise IndexMissing(f"no version older than {live[0]} is kept; nothing to roll back to")
        lock.check()
        swap_alias(client, alias, older[-1])
    return {"alias": alias, "from": live[0], "to": older[-1], "orphans_deleted": orphans}


def index_meta(client: Elasticsearch, alias: str) -> dict | None:
    """The es_faq _meta of the index behind `alias`, or None when there is none."""
    try:
        mappings = client.indices.get_mapping(index=alias).body
    except NotFoundError:
        return None
    for body in mappings.values():
        return body["mappings"].get("_meta", {}).get("es_faq", {})
    return None
