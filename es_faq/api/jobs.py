"""Admin previews and doctor runs as background jobs: one at a time across every worker, each in a
process of its own at low priority on one core, its record in `jobs_index` (docs/api.md, "Jobs").

Run in a request thread, they slowed every search of their worker: their Python work (segmentation,
analysis, the client) holds the GIL that the serving threads need, and their ONNX runs took every core
(issue 22). A child process has a GIL of its own; `nice` and one core leave the workers the CPU.

The one-at-a-time lease is a writer lock (es_faq/kb/lock.py) in `jobs_index` whose owner is the
running job's id: the API takes it with op_type=create, so of two requests exactly one starts a job,
and hands it to the child, which renews it while it works. A job whose lease is not its own any
more (its process and the worker that started it both killed) is reported failed by whoever reads it;
a child whose worker died cancels itself, deleting its temporary preview index on the way out.

Run as `python -m es_faq.api.jobs JOB_ID PARENT_PID`, by `start` only."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from pathlib import Path

from elasticsearch import ApiError, ConflictError, Elasticsearch, NotFoundError, TransportError

from ..config.load import ENV_PREFIX, as_env, load_settings
from ..config.settings import Settings
from ..engine.client import bulk_write, ensure_small_index, make_client, refusal, unreachable
from ..errors import EsFaqError, OperatorError, SyncBusy
from ..kb.lock import LOCK_ID, Lock, now_ms
from .errors import JobBusy, JobNotFound, public_message

log = logging.getLogger("es_faq.api")

KINDS = ("dictionary-preview", "doctor")
UNFINISHED = ("queued", "running")  # then done or failed
LEASE = "admin jobs"  # the lease's name in messages
NICE = 10  # below the workers (0): a job takes the CPU they leave
KEEP_DAYS = 7  # finished jobs' records are deleted after this many days
WAIT_POLL_S = 0.5
JOB_ID_CHARS = frozenset("0123456789abcdef")
_OFF = {"type": "object", "enabled": False}  # stored as it is, never indexed
PROPERTIES = {
    # the job records
    "kind": {"type": "keyword"}, "state": {"type": "keyword"}, "params": _OFF, "created_at": {"type": "date"},
    "started_at": {"type": "date"}, "finished_at": {"type": "date"}, "server_pid": {"type": "long"},
    "log": {"type": "keyword", "index": False}, "error": _OFF, "result": _OFF,
    # the lease (kb/lock.py), and both: where the job runs
    "owner": {"type": "keyword"}, "command": {"type": "keyword"}, "renewed_at": {"type": "keyword"},
    "expires_at": {"type": "long"}, "host": {"type": "keyword"}, "pid": {"type": "long"},
}


def poll_url(job_id: str) -> str:
    return f"/v1/admin/jobs/{job_id}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _failure(code: str, message: str, status: int = 500) -> dict:
    return {"code": code, "message": message, "status": status}


# --- the API's side ---------------------------------------------------------------------------------------
def start(client: Elasticsearch, settings: Settings, kind: str, params: dict, log_dir: Path) -> dict:
    """Take the lease, record the job as queued and start its process (output to a log file in `log_dir`);
    JobBusy while another job runs."""
    ensure_small_index(client, settings.jobs_index, PROPERTIES)
    job_id = uuid.uuid4().hex
    log_file = log_dir / f"job-{kind}-{job_id}.log"
    lease = Lock(client, settings, LEASE, f"{kind} job", index=settings.jobs_index, owner=job_id)
    try:
        lease.acquire(0)
    except SyncBusy:
        raise _busy(client, settings) from None
    record = {"kind": kind, "state": "queued", "params": params, "created_at": _now(), "started_at": None,
              "finished_at": None, "host": socket.gethostname(), "pid": None, "server_pid": os.getpid(),
              "log": str(log_file), "error": None, "result": None}
    try:
        client.index(index=settings.jobs_index, id=job_id, document=record, op_type="create")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the workers' metrics are not the job's to write
        env.update(as_env(settings, omit=("admin_token",)), TOKENIZERS_PARALLELISM="false")
        with log_file.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "es_faq.api.jobs", job_id, str(os.getpid())], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True)
    except BaseException:
        lease.release()
        client.options(ignore_status=404).delete(index=settings.jobs_index, id=job_id)
        raise
    lease.hand_off()
    threading.Thread(target=_reap, args=(client, settings, job_id, proc), name=f"job-{job_id[:8]}",
                     daemon=True).start()
    return view(job_id, record, None)


def _busy(client: Elasticsearch, settings: Settings) -> JobBusy:
    held = client.options(ignore_status=404).get(index=settings.jobs_index, id=LOCK_ID)
    if not held.get("found"):
        return JobBusy("an admin job was just starting or finishing; try again")
    job_id = held["_source"]["owner"]
    busy = JobBusy(f"admin job {job_id} ({held['_source']['command']}) is running, and one runs at a time: poll "
                   f"GET {poll_url(job_id)}, then try again")
    busy.extra = {"job_id": job_id, "poll": poll_url(job_id)}
    return busy


def _reap(client: Elasticsearch, settings: Settings, job_id: str, proc: subprocess.Popen) -> None:
    """Wait for the job's process; if it died before finishing its record (kill -9), record that."""
    status = proc.wait()
    try:
        hit = client.get(index=settings.jobs_index, id=job_id).body
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        _fail_if_dead(client, settings, hit, f"its process (pid {proc.pid}) {how} before finishing")
    except Exception:  # Elasticsearch gone: whoever reads the record later sees the lease lapsed
        log.exception("could not record the end of admin job %s", job_id)


def get(client: Elasticsearch, settings: Settings, job_id: str) -> dict:
    """The job as GET /v1/admin/jobs/{id} shows it; an unfinished job whose lease lapsed is failed now."""
    if not (len(job_id) == 32 and set(job_id) <= JOB_ID_CHARS):
        raise JobNotFound(f"no admin job {job_id[:80]!r}: a job id is the 32 hex digits that POST "
                          "/v1/admin/dictionary-preview or /v1/admin/doctor answered")
    for _ in range(5):  # a conflict: the record changed while it was read; read it again
        hit = client.options(ignore_status=404).get(index=settings.jobs_index, id=job_id).body
        if not hit.get("found"):
            raise JobNotFound(f"no admin job {job_id}: it was never started here, or it finished over {KEEP_DAYS} "
                              "days ago and its record was deleted")
        lease = _lease_of(client, settings, job_id)
        if hit["_source"]["state"] in UNFINISHED and lease is None:
            if not _fail_if_dead(client, settings, hit, "it stopped renewing its lease (its process and the server "
                                 "worker that started it were killed, or could not reach Elasticsearch)"):
                continue
            hit = client.get(index=settings.jobs_index, id=job_id).body
        return view(job_id, hit["_source"], lease)
    raise JobNotFound(f"admin job {job_id} kept changing while it was read; ask again")


def wait(client: Elasticsearch, settings: Settings, job_id: str) -> dict:
    """The job once it is done or failed (for `?wait=true`)."""
    while True:
        job = get(client, settings, job_id)
        if job["state"] not in UNFINISHED:
            return job
        time.sleep(WAIT_POLL_S)


def _lease_of(client: Elasticsearch, settings: Settings, job_id: str) -> dict | None:
    """The lease while it is `job_id`'s and not expired, else None."""
    held = client.options(ignore_status=404).get(index=settings.jobs_index, id=LOCK_ID)
    if not held.get("found") or held["_source"]["owner"] != job_id or held["_source"]["expires_at"] < now_ms():
        return None
    return held["_source"]


def _fail_if_dead(client: Elasticsearch, settings: Settings, hit: dict, why: str) -> bool:
    """The job of `hit` is gone (its process exited, or its lease lapsed): free its lease, delete the
    temporary index a preview of it left, then record it failed unless it finished. False when the
    record changed since it was read."""
    job_id, source = hit["_id"], hit["_source"]
    held = client.options(ignore_status=404).get(index=settings.jobs_index, id=LOCK_ID)
    if held.get("found") and held["_source"]["owner"] == job_id:
        client.options(ignore_status=(404, 409)).delete(
            index=settings.jobs_index, id=LOCK_ID, if_seq_no=held["_seq_no"], if_primary_term=held["_primary_term"])
    if source["state"] not in UNFINISHED:
        return True
    if source["kind"] == "dictionary-preview":
        from ..evaluation.preview import drop_stale_previews

        # Its process is gone from this host (or the index is old): the stale-preview rule.
        drop_stale_previews(client, settings.vocab_index, None)
    try:
        client.update(index=settings.jobs_index, id=job_id, if_seq_no=hit["_seq_no"],
                      if_primary_term=hit["_primary_term"], doc={
                          "state": "failed", "finished_at": _now(),
                          "error": _failure("job_failed", f"admin job {job_id} failed: {why}")})
    except ConflictError:
        return False
    return True


def view(job_id: str, source: dict, lease: dict | None) -> dict:
    """A job as the API shows it: its state, and its result once done (the body the endpoint answered
    when it ran in the request: an object, or the doctor's HTML page as a string)."""
    error = source.get("error")
    return {"id": job_id, "kind": source["kind"], "state": source["state"], "params": source["params"],
            "created_at": source["created_at"], "started_at": source.get("started_at"),
            "finished_at": source.get("finished_at"), "heartbeat_at": lease["renewed_at"] if lease else None,
            "host": source["host"], "pid": source.get("pid"), "log": source["log"],
            "error": {"code": error["code"], "message": error["message"]} if error else None,
            "error_status": error["status"] if error else None, "result": source.get("result"),
            "poll": poll_url(job_id)}


# --- the job's process ------------------------------------------------------------------------------------
class Cancelled(BaseException):
    """Raised in the job's main thread by SIGTERM: a BaseException, so that no `except Exception` of the
    work swallows it, while every `finally` (a preview's temporary index) still runs."""


_WHY = ["it was sent SIGTERM"]


def _on_sigterm(signum, frame) -> None:
    raise Cancelled(_WHY[0])


def _lower_priority() -> None:
    """Below the serving workers, on one core: call first, before any thread starts (on Linux each thread
    has its own nice value and affinity, and new threads inherit them)."""
    os.nice(NICE)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def _watch(parent: int, lease: Lock, stop: threading.Event) -> None:
    """Cancel the job when the worker that started it exits, or when its lease lapsed."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            _WHY[0] = f"the server worker that started it (pid {parent}) exited"
        elif lease.lost:
            _WHY[0] = "it lost its lease (starved or cut off from Elasticsearch past writer_lock_ttl_s)"
        else:
            continue
        os.kill(os.getpid(), signal.SIGTERM)
        return


def _run(kind: str, params: dict, settings: Settings, client: Elasticsearch):
    if kind == "dictionary-preview":
        from ..evaluation.preview import preview
        from ..search.pipeline import Searcher

        bench = settings.bench_dir / params["bench"] if params["bench"] else None
        return preview(Searcher(settings, client), params["action"], params["kind"], params["terms"],
                       last=params["last"] or 200, bench=bench, split=params["split"], limit=params["limit"],
                       mode=params["mode"])
    from ..kb import doctor
    from ..search.rerank import Reranker

    report = doctor.run(client, settings, Reranker(settings), depth=params["depth"], sample=params["sample"],
                        seed=params["seed"], since=params["since"])
    if params["format"] == "html":
        from ..kb.doctor_view import render_html

        return render_html(report)
    return report.as_dict()


def _prune(client: Elasticsearch, index: str) -> None:
    """Delete the records of jobs that finished over KEEP_DAYS ago (a search and a bulk request: the
    distribution has no _delete_by_query); housekeeping, so a failure is only logged."""
    try:
        hits = client.search(index=index, size=1000, source=False, query={
            "range": {"finished_at": {"lt": f"now-{KEEP_DAYS}d"}}})["hits"]["hits"]
        bulk_write(client, ({"_op_type": "delete", "_id": hit["_id"]} for hit in hits), index=index,
                   chunk_size=500, verb="refused to delete", what="old job records", missing_deletes_ok=True)
    except (TransportError, ApiError, EsFaqError) as exc:
        print(f"old job records not deleted: {exc}", file=sys.stderr)


def _error_of(exc: Exception, settings: Settings) -> dict:
    """A failed job's error as the API answered it when the work ran in the request (errors.register)."""
    if isinstance(exc, ApiError) and not isinstance(exc, NotFoundError):
        exc = refusal(settings, exc)
    elif isinstance(exc, TransportError):
        exc = unreachable(settings, exc)
    if isinstance(exc, EsFaqError) and (exc.http_status != 500 or isinstance(exc, OperatorError)):
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return _failure(exc.code, public_message(exc), exc.http_status)
    traceback.print_exception(exc)
    return _failure("internal", "internal error; the job's log has the details")


def main(job_id: str, parent: int) -> int:
    _lower_priority()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # One ONNX thread: the job has one core. No breaker: the job's requests are not the server's to
    # count, and the server's breaker (another process) never sees them, nor lends them its probe.
    settings = load_settings().replace(onnx_threads=1, engine_breaker_failures=0)
    client = make_client(settings)
    index = settings.jobs_index
    record = client.get(index=index, id=job_id)["_source"]
    lease = Lock(client, settings, LEASE, f"{record['kind']} job", index=index, owner=job_id)
    stop = threading.Event()
    acquired = False
    outcome: dict
    try:
        lease.acquire(0, adopt=job_id)
        acquired = True
        threading.Thread(target=_watch, args=(parent, lease, stop), name="job-watch", daemon=True).start()
        client.update(index=index, id=job_id, doc={"state": "running", "started_at": _now(), "pid": os.getpid(),
                                                   "host": socket.gethostname()})
        _prune(client, index)
        result = _run(record["kind"], record["params"], settings, client)
        if os.getppid() != parent:  # the worker died while the job ran (the watcher looks once a second)
            raise Cancelled(f"the server worker that started it (pid {parent}) exited")
        outcome = {"state": "done", "result": result}
    except Cancelled as exc:
        outcome = {"state": "failed", "error": _failure("job_failed", f"admin job {job_id} was cancelled: {exc}")}
    except Exception as exc:
        outcome = {"state": "failed", "error": _error_of(exc, settings)}
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the outcome is known: record it whatever comes
    stop.set()
    try:
        # The record first, then the lease: a lease gone while the record says running means a dead job.
        client.update(index=index, id=job_id, doc={**outcome, "finished_at": _now()})
    finally:
        if acquired:  # release() of a lease never taken would delete the holder's
            lease.release()
    return 0 if outcome["state"] == "done" else 1


if __name__ == "__main__":
    status = main(sys.argv[1], int(sys.argv[2]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # the record is written: no need to wait for the models' teardown
