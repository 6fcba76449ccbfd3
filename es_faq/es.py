"""The one way to build the Elasticsearch client and to tell whether the cluster is reachable."""

from __future__ import annotations

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
