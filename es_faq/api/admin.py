"""/v1/admin: the analysis dictionaries (and a preview of a change), a background re-sync from MySQL
and the knowledge-base doctor, behind a bearer token.

Without `admin_token` every endpoint here answers 404 `admin_disabled`: off, never open. The
dictionary endpoints are `es-faq dict list|add|remove` over HTTP (es_faq/search/dictionary.py); reindex
starts `es-faq sync full` as a detached process (es_faq/sync/), as cron would. A preview and the doctor
run as background jobs, one at a time, outside the serving workers (es_faq/api/jobs.py)."""

from __future__ import annotations

import hmac
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request

from ..config.load import ENV_PREFIX, as_env
from ..config.settings import SEARCH_MODES, Settings
from ..engine.client import engine_errors, live_indices
from ..errors import ConfigError, InvalidInput, SyncBusy
from ..evaluation.preview import MAX_QUERIES as MAX_PREVIEW_QUERIES
from ..evaluation.preview import check_change
from ..kb.doctor import check_options
from ..kb.index import lock_alias
from ..search.dictionary import KINDS, DictionaryStore, validate
from ..search.dictionary import entry_id as id_of
from ..sync.source import MySqlSource
from ..sync.state import SyncState
from . import jobs
from .context import current_searcher as _searcher
from .errors import AdminDisabled, EntryNotFound, SyncNotConfigured, Unauthorized, error_response
from .v1 import _json_body, _known_fields, _text

admin = Blueprint("admin", __name__, url_prefix="/v1/admin")

ENTRY_FIELDS = ("kind", "terms")
MAX_TERMS = 100  # a synonym group is a handful of words; this only bounds the work of one request
PREVIEW_BENCH_LIMIT = 200  # a bench split is cut to this many queries unless asked (it runs twice)
REINDEX = "es_faq.reindex"  # app.extensions key: the last reindex this process started


def _client():
    """The searcher's client with the writers' timeout: the serving one gives up after search_timeout_s."""
    searcher = _searcher()
    return searcher.client.options(request_timeout=searcher.settings.es_timeout_s)


@admin.before_request
def authorize() -> None:
    """Every admin request: 404 while no token is configured, 401 unless it bears the token."""
    token = current_app.config["ES_FAQ_SETTINGS"].admin_token
    if not token:
        raise AdminDisabled("the admin API is disabled; set ES_FAQ_ADMIN_TOKEN (admin_token) to enable it")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("this endpoint needs the admin token: send `Authorization: Bearer <admin_token>`")
    # WSGI headers are latin-1 strings, so this gives back the bytes the client sent.
    if not hmac.compare_digest(given.strip().encode("latin-1", "replace"), token.encode("utf-8", "surrogateescape")):
        raise Unauthorized("the admin token is wrong")


# --- dictionaries ------------------------------------------------------------------------------------
def _store() -> DictionaryStore:
    return DictionaryStore(_client(), _searcher().settings)


def _entry(kind: str, terms: list[str]) -> dict:
    return {"id": id_of(kind, terms), "kind": kind, "terms": terms}


def parse_entry(body) -> tuple[str, list[str]]:
    """kind and terms of a new entry, as types; what they may say is dictionary.validate's to decide."""
    _known_fields(body, ENTRY_FIELDS, '{"kind": "synonym", "terms": ["查询", "查看"]}')
    for name in ENTRY_FIELDS:
        if body.get(name) is None:
            raise InvalidInput(f"{name} is required")
    kind = _text(body["kind"], "kind")
    terms = body["terms"]
    if not isinstance(terms, list) or not 1 <= len(terms) <= MAX_TERMS:
        raise InvalidInput(f"terms must be an array of 1 to {MAX_TERMS} strings")
    return kind, [_text(term, "each term") for term in terms]


@admin.get("/dictionary")
def list_entries():
    kind = request.args.get("kind")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"unknown dictionary kind {kind[:40]!r}; use one of {', '.join(KINDS)}")
    settings = _searcher().settings
    with engine_errors(settings):
        snapshot = _store().load()
    entries = [_entry(k, terms) for k, terms in snapshot.entries() if kind in (None, k)]
    return jsonify({"version": snapshot.version, "entries": entries})


@admin.post("/dictionary")
def add_entry():
    kind, terms = parse_entry(_json_body())
    settings = _searcher().settings
    store = _store()
    with engine_errors(settings):
        terms = validate(kind, terms, store.load())  # the cleaned terms, for the answer; add() checks again
        version = store.add(kind, terms)
    return jsonify({**_entry(kind, terms), "version": version,
                    "effective_within_s": settings.dict_check_interval_s}), 201


@admin.delete("/dictionary/<path:entry_id>")
def remove_entry(entry_id: str):
    kind, _, key = entry_id.partition(":")
    if kind not in KINDS or not key.strip():
        raise EntryNotFound(f"no dictionary entry {entry_id[:200]!r}; ids are KIND:KEY, as GET "
                            "/v1/admin/dictionary lists them")
    settings = _searcher().settings
    try:
        with engine_errors(settings):
            version = _store().remove(kind, [key])  # id_of(kind, [key]) is entry_id itself, for every kind
    except InvalidInput as exc:  # remove() says so when there is no such entry
        raise EntryNotFound(exc.message) from None
    return jsonify({"id": entry_id, "removed": True, "version": version,
                    "effective_within_s": settings.dict_check_interval_s})


PREVIEW_FIELDS = ("action", "kind", "terms", "last", "bench", "split", "limit", "mode")
BENCH_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def _count(body: dict, name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PREVIEW_QUERIES:
        raise InvalidInput(f"{name} must be an integer from 1 to {MAX_PREVIEW_QUERIES}")
    return value


@admin.post("/dictionary-preview")  # not /dictionary/preview: DELETE /dictionary/<entry_id> would claim it
def preview_entry():
    """es-faq dict preview as a job: replay logged (or a bench's) queries through the changed dictionaries."""
    body = _json_body()
    _known_fields(body, PREVIEW_FIELDS, '{"action": "add", "kind": "synonym", "terms": ["查询", "查看"], "last": 200}')
    kind, terms = parse_entry({k: body.get(k) for k in ENTRY_FIELDS})
    action = _text(body.get("action", ""), "action")
    check_change(action, kind)  # what the entry says is the job's to check, against the dictionary it reads
    settings = _searcher().settings
    bench = None
    if body.get("bench") is not None:
        bench = _text(body["bench"], "bench")
        if not BENCH_NAME.fullmatch(bench) or not (settings.bench_dir / bench / "queries.jsonl").is_file():
            raise InvalidInput(f"bench must name a faq-bench directory under bench_dir ({settings.bench_dir})")
    split = _text(body.get("split", "dev"), "split")
    mode = _text(body["mode"], "mode") if body.get("mode") is not None else None
    if mode is not None and mode not in SEARCH_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}")
    last = _count(body, "last", 200)
    limit = _count(body, "limit", PREVIEW_BENCH_LIMIT if bench else None)
    return _job("dictionary-preview", {"action": action, "kind": kind, "terms": terms, "last": last, "bench": bench,
                                       "split": split, "limit": limit, "mode": mode})


# --- background jobs: previews and the doctor --------------------------------------------------------------
def _job(kind: str, params: dict):
    """202 with the job (its id, state and `poll` URL); with `?wait=true`, what it ends with: the body the
    endpoint answered when the work ran in the request, or its error."""
    wait = request.args.get("wait", "false")
    if wait not in ("true", "false"):
        raise InvalidInput("wait must be true or false")
    return _started(kind, params, wait == "true")


def _started(kind: str, params: dict, wait: bool):
    settings = _searcher().settings
    client = _client()
    # Not inside engine_errors: a job's requests are not the serving breaker's to count, nor to probe
    # for (issue 22); the app's handler still answers an engine error with its 503 or 500.
    job = jobs.start(client, settings, kind, params, _log_dir(settings))
    if not wait:
        response = jsonify(job)
        response.status_code = 202
        response.headers["Location"] = job["poll"]
        return response
    return _outcome(jobs.wait(client, settings, job["id"]))


def _outcome(job: dict):
    if job["state"] == "failed":
        return error_response(job["error"]["code"], job["error"]["message"], job["error_status"])
    if isinstance(job["result"], str):  # the doctor's page
        return Response(job["result"], mimetype="text/html")
    return jsonify(job["result"])


@admin.get("/jobs/<job_id>")
def job_status(job_id: str):
    """A preview's or a doctor run's state, from any worker; its result once done."""
    return jsonify(jobs.get(_client(), _searcher().settings, job_id))


# --- sync from MySQL -----------------------------------------------------------------------------------
@dataclass
class Reindex:
    """A detached `es-faq sync full` this process started."""

    proc: subprocess.Popen
    alias: str
    log: str
    command: list[str] = field(default_factory=list)
    started_at: str = ""

    def as_dict(self) -> dict:
        status = self.proc.poll()  # also reaps the finished child
        return {"pid": self.proc.pid, "command": self.command, "alias": self.alias, "log": self.log,
                "started_at": self.started_at, "running": status is None, "exit_status": status}


def _log_dir(settings: Settings) -> Path:
    try:
        directory = settings.home / "logs"
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    except OSError:  # a read-only home: the log still has to go somewhere
        return Path(tempfile.gettempdir())


def start_full_sync(settings: Settings, lock_owner: str) -> Reindex:
    """`es-faq sync full` of settings.index_alias in a new session, with exactly these settings, output to a log;
    it adopts the writer lease `lock_owner` that this process took for it."""
    alias = settings.index_alias
    args = ["sync", "full", "--no-progress", "--alias", alias]
    now = datetime.now(timezone.utc)
    log = _log_dir(settings) / f"sync-full-{alias}-{now:%Y%m%dT%H%M%S%fZ}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(as_env(settings, omit=("admin_token",)))  # the child needs no admin token
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "es_faq", *args, "--adopt-lock", lock_owner], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    return Reindex(proc, alias, str(log), ["es-faq", *args], now.isoformat(timespec="seconds"))


def _source_url(settings: Settings) -> str:
    """The MySQL source, password masked; SyncNotConfigured (400) when there is none to sync from."""
    try:
        return MySqlSource(settings).url
    except ConfigError as exc:
        raise SyncNotConfigured(f"no MySQL source to reindex from: {exc.message}") from None


@admin.post("/reindex")
def reindex():
    searcher = _searcher()
    settings = searcher.settings
    source = _source_url(settings)
    last = current_app.extensions.get(REINDEX)
    if last and last.proc.poll() is None:
        raise SyncBusy(f"the reindex this server started (pid {last.proc.pid}) is still running; "
                       "GET /v1/admin/sync shows its progress")
    with engine_errors(settings):
        # Taken here in one conditional create (op_type=create), not checked then started: of
        # requests at once exactly one gets the lease, the others 409 (SyncBusy).
        lock, _ = lock_alias(_client(), settings, settings.index_alias, "admin reindex")
    try:
        job = start_full_sync(settings, lock.hand_off())
    except BaseException:
        lock.release(handed_off_too=True)
        raise
    current_app.extensions[REINDEX] = job
    return jsonify({"status": "started", "source": source, **job.as_dict()}), 202


@admin.get("/sync")
def sync_status():
    searcher = _searcher()
    settings = searcher.settings
    alias = settings.index_alias
    with engine_errors(settings):
        client = _client()
        live = live_indices(client, alias)
        index = live[0] if len(live) == 1 else None
        state = SyncState(client, alias, settings)
        watermark = state.watermark(index) if index else None
        holder = state.holder()
    try:
        source = MySqlSource(settings).url
    except ConfigError:
        source = None
    last = current_app.extensions.get(REINDEX)
    return jsonify({"alias": alias, "index": index, "source": source, "watermark": watermark, "lock": holder,
                    "reindex": last.as_dict() if last else None})


# --- the knowledge-base doctor ----------------------------------------------------------------------------
DOCTOR_FORMATS = ("json", "html")
ASCII_INT = re.compile(r"[0-9]{1,9}")


def _int_arg(name: str, low: int, high: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    # ASCII digits only: str.isdigit() also passes "²" and "①", which int() then refuses (a 500).
    if not ASCII_INT.fullmatch(raw) or int(raw) < low or (high is not None and int(raw) > high):
        raise InvalidInput(f"{name} must be an integer from {low}" + (f" to {high}" if high else " up"))
    return int(raw)


def _doctor_params() -> dict:
    fmt = request.args.get("format", "json")
    if fmt not in DOCTOR_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(DOCTOR_FORMATS)}")
    depth, sample, since = _int_arg("depth", 1, 50), _int_arg("sample", 1), request.args.get("since")
    check_options(depth, sample, since)
    return {"format": fmt, "depth": depth, "sample": sample, "seed": _int_arg("seed", 0) or 0, "since": since}


@admin.post("/doctor")
def start_doctor():
    """`es-faq doctor` over the served alias, as a job: on a large knowledge base pass `sample`."""
    return _job("doctor", _doctor_params())


@admin.get("/doctor")
def run_doctor():
    """The doctor for callers from before jobs: a job, waited for; the report, or its error."""
    return _started("doctor", _doctor_params(), wait=True)
