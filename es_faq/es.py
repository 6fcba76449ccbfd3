"""The one way to build the Elasticsearch client and to tell whether the cluster is reachable."""

from __future__ import annotations

import contextlib

from elasticsearch import ApiError, Elasticsearch, TransportError

from .config import Settings
from .errors import EngineUnavailable


def make_client(settings: Settings) -> Elasticsearch:
    kwargs: dict = {"request_timeout": settings.es_timeout_s, "retry_on_timeout": False, "max_retries": 1}
    if settings.es_api_key:
        kwargs["api_key"] = settings.es_api_key
    elif settings.es_username:
        kwargs["basic_auth"] = (settings.es_username, settings.es_password)
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    return Elasticsearch(settings.es_url, **kwargs)


def unreachable(settings: Settings, exc: Exception | None = None) -> EngineUnavailable:
    detail = f" ({type(exc).__name__})" if exc else ""
    return EngineUnavailable(
        f"Elasticsearch is not reachable at {settings.es_url}{detail}. "
        "Start the local engine with `es-faq engine up`, or point ES_FAQ_ES_URL at your cluster."
    )


@contextlib.contextmanager
def engine_errors(settings: Settings):
    """Elasticsearch down, overloaded (429) or failing (5xx) becomes EngineUnavailable (a 503 in the
    API); a 4xx refusal of the request itself is raised as it is."""
    try:
        yield
    except (TransportError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status_code < 500 and exc.status_code != 429:
            raise
        raise unreachable(settings, exc) from None


def cluster_health(client: Elasticsearch, settings: Settings, wait_for_status: str | None = None,
                   timeout_s: float | None = None) -> dict:
    """Cluster health; the integ-test distribution has no `GET /`, so this is the readiness probe."""
    try:
        kwargs = {}
        if wait_for_status:
            kwargs = {"wait_for_status": wait_for_status, "timeout": f"{int(timeout_s or 30)}s"}
        return client.options(request_timeout=(timeout_s or settings.es_timeout_s) + 5).cluster.health(**kwargs).body
    except (TransportError, ApiError) as exc:
        raise unreachable(settings, exc) from None
