"""The one way to build the Elasticsearch client and to tell whether the cluster is reachable."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from .config import Settings, mask_url
from .errors import EngineUnavailable

CONNECTIONS_PER_NODE = 32


def make_client(settings: Settings, timeout_s: float | None = None) -> Elasticsearch:
    """The client; `timeout_s` (default es_timeout_s) bounds each request, search_timeout_s for serving."""
    # A pooled connection per serving thread (gunicorn_conf.py: 16): with fewer, a thread waits for a
    # connection before its own timeout starts, and a hung node's 503 comes late (docs/reliability.md).
    # A request that gets no connection, or a 429/502/503/504, is sent again to the next node (the
    # client marks the failed one dead for a while): with every node listed in es_url, a node that
    # dies costs no request (docs/reliability.md, "A node dies"). A timeout is not retried: it
    # would double the wait on a hung cluster.
    hosts = settings.es_urls
    kwargs: dict = {"request_timeout": timeout_s or settings.es_timeout_s, "retry_on_timeout": False,
                    "max_retries": max(1, len(hosts) - 1), "connections_per_node": CONNECTIONS_PER_NODE}
    if settings.es_api_key:
        kwargs["api_key"] = settings.es_api_key
    elif settings.es_username:
        kwargs["basic_auth"] = (settings.es_username, settings.es_password)
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    return Elasticsearch(hosts, **kwargs)


def unreachable(settings: Settings, exc: Exception | None = None) -> EngineUnavailable:
    detail = f" ({type(exc).__name__})" if exc else ""
    return EngineUnavailable(
        f"Elasticsearch is not reachable at {mask_url(settings.es_url)}{detail}. "
        "Start the local engine with `es-faq engine up`, or point ES_FAQ_ES_URL at your cluster."
    )


class _Breaker:
    """The requests to one cluster from this process: failing at once while it is known not to answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0  # requests in a row that got no answer
        self.open_until = 0.0
        self.probing = False

    def _refusal(self, settings: Settings) -> EngineUnavailable | None:
        if not settings.engine_breaker_failures or self.failures < settings.engine_breaker_failures:
            return None
        if self.probing or time.monotonic() < self.open_until:
            return EngineUnavailable(
                f"Elasticsearch is not reachable at {mask_url(settings.es_url)}: the last {self.failures} "
                f"requests got no answer in time, so es-faq asks it again only every "
                f"{settings.engine_breaker_open_s:g} s. Check the cluster's health and load.")
        return None

    def check(self, settings: Settings) -> None:
        with self._lock:
            refusal = self._refusal(settings)
        if refusal:
            raise refusal

    def enter(self, settings: Settings) -> bool:
        """Whether this request is the one let through to probe; EngineUnavailable while open."""
        with self._lock:
            refusal = self._refusal(settings)
            if refusal:
                raise refusal
            self.probing = self.failures >= settings.engine_breaker_failures > 0
            return self.probing

    def leave(self, failed: bool, probe: bool, settings: Settings) -> None:
        with self._lock:
            self.probing = self.probing and not probe
            self.failures = self.failures + 1 if failed else 0
            if failed and settings.engine_breaker_failures and self.failures >= settings.engine_breaker_failures:
                self.open_until = time.monotonic() + settings.engine_breaker_open_s


_BREAKERS: dict[str, _Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def _breaker(settings: Settings) -> _Breaker:
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(settings.es_url, _Breaker())


def check_engine(settings: Settings) -> None:
    """EngineUnavailable at once while the breaker refuses requests: a search that would be refused
    costs no analysis nor embedding, so clients retrying without pause cannot starve the CPU that
    the node needs to recover (docs/reliability.md)."""
    _breaker(settings).check(settings)


@contextlib.contextmanager
def engine_errors(settings: Settings):
    """Elasticsearch down, overloaded (429) or failing (5xx) becomes EngineUnavailable (a 503 in the
    API); a 4xx refusal of the request itself is raised as it is. After engine_breaker_failures such
    failures in a row, requests fail at once for engine_breaker_open_s but one, which probes."""
    breaker = _breaker(settings)
    probe = breaker.enter(settings)
    failed = False
    try:
        yield
    except (TransportError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status_code < 500 and exc.status_code != 429:
            raise
        failed = True
        raise unreachable(settings, exc) from None
    finally:
        breaker.leave(failed, probe, settings)


def cluster_health(client: Elasticsearch, settings: Settings, wait_for_status: str | None = None,
                   timeout_s: float | None = None, wait_for_nodes: int | None = None) -> dict:
    """Cluster health; the integ-test distribution has no `GET /`, so this is the readiness probe."""
    try:
        kwargs: dict[str, Any] = {}
        if wait_for_status:
            kwargs = {"wait_for_status": wait_for_status, "timeout": f"{int(timeout_s or 30)}s"}
        if wait_for_nodes:
            kwargs.update(wait_for_nodes=f">={wait_for_nodes}", timeout=f"{int(timeout_s or 30)}s")
        return client.options(request_timeout=(timeout_s or settings.es_timeout_s) + 5).cluster.health(**kwargs).body
    except (TransportError, ApiError) as exc:
        raise unreachable(settings, exc) from None
