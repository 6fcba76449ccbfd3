"""Errors users see: each has a stable code, a message that says what to do, and an exit status."""


class EsFaqError(Exception):
    code = "error"
    http_status = 500
    exit_status = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(EsFaqError):
    code = "bad_config"
    exit_status = 2


class InvalidInput(EsFaqError):
    code = "invalid_input"
    http_status = 400
    exit_status = 2


class EngineUnavailable(EsFaqError):
    code = "engine_unavailable"
    http_status = 503
    exit_status = 3


class PartialResults(EngineUnavailable):
    """Shards failed twice and search_partial is "refuse"."""

    code = "partial_results"


class IndexMissing(EsFaqError):
    code = "index_missing"
    http_status = 503
    exit_status = 4


class OperatorError(EsFaqError):
    """Permanent until an operator acts (pulls a model, opens an index, fixes credentials or the URL):
    a 500 with its own code and no Retry-After, since waiting does not help; never `internal`."""

    http_status = 500


class EngineRejected(OperatorError):
    """Elasticsearch refused the request itself (401/403 credentials or privileges, another 4xx)."""

    code = "engine_rejected"
    exit_status = 3


class IndexClosed(OperatorError):
    code = "index_closed"
    exit_status = 4


class NotElasticsearch(OperatorError):
    """What answers at es_url is not Elasticsearch (no X-Elastic-Product header: a web server, a proxy's page)."""

    code = "not_elasticsearch"
    exit_status = 3


class ModelError(OperatorError):
    """A model missing or unusable: permanent until an operator pulls it, so a 500, not a 503 to retry."""

    code = "model_error"
    http_status = 500
    exit_status = 5

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        # What to do about it, without the install's paths: all that an API caller is shown.
        self.hint = hint


class DataError(EsFaqError):
    code = "bad_data"
    http_status = 400
    exit_status = 6


class ProvisionError(EsFaqError):
    code = "provision_failed"
    exit_status = 7


# The MySQL sync (es_faq/sync).
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
