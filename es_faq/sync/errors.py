"""Errors of the MySQL sync, in the es_faq.errors family (stable code, what to do, exit status)."""

from ..errors import EsFaqError


class SourceUnavailable(EsFaqError):
    code = "source_unavailable"
    http_status = 503
    exit_status = 8


class SyncBusy(EsFaqError):
    """Another sync holds the lock; exit 75 is EX_TEMPFAIL, "try again later", for cron."""

    code = "sync_busy"
    http_status = 409
    exit_status = 75


class LockLost(EsFaqError):
    code = "sync_lock_lost"
    http_status = 409
    exit_status = 9
