"""The one way to build the Elasticsearch client and to tell whether the cluster is reachable.

Also the small index chores every layer above shares: the indices behind an alias, a small index
created once, a bulk write that fails on any refused item."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from typing import Any

from elastic_transport import ApiResponse
from elasticsearch import (
    ApiError,
    ConnectionError,
    Elasticsearch,
    NotFoundError,
    TransportError,
    UnsupportedProductError,
    helpers,
)
from elasticsearch.serializer import OrjsonSerializer

from ..config.settings import Settings
from ..config.urls import mask_url
from ..errors import EngineRejected, EngineUnavailable, EsFaqError, IndexClosed, NotElasticsearch

CONNECTIONS_PER_NODE = 32


class _Elasticsearch(Elasticsearch):
    """elasticsearch-py checks Elasticsearch's product header only until one answer has it; this client
    checks every 2xx answer, so a proxy or web server that later answers in the node's place (its own
    200 page) is UnsupportedProductError (not_elasticsearch), not a text body read as a search result
    (bench/drills/proxy_faults.py). `options()` keeps the class."""

    def perform_request(self, method: str, path: str, **kwargs: Any) -> ApiResponse[Any]:
        response = super().perform_request(method, path, **kwargs)
        meta = response.meta
        if 200 <= meta.status < 300 and meta.headers.get("x-elastic-product", "") != "Elasticsearch":
            raise UnsupportedProductError("The client noticed that the server is not Elasticsearch and we do not "
                                          "support this unknown product", meta=meta, body=response.body)
        return response


def make_client(settings: Settings, timeout_s: float | None = None) -> Elasticsearch:
    """The client; `timeout_s` (default es_timeout_s) bounds each request, search_timeout_s for serving."""
    # A pooled connection per serving thread (gunicorn_conf.py: 16): with fewer, a thread waits for a
    # connection before its own timeout starts, and a hung node's 503 comes late (docs/reliability.md).
    # Each node is on its own in elastic-transport's node pool: a request that gets no connection, a
    # 429/502/503/504 or, with more than one node, no answer in time, is sent again to another node,
    # and the failed one is left out for 1 s, then 2, 4, ... up to 30 (dead_node_backoff_factor): a
    # hung or dead node costs one slow request now and then, not every third one (docs/reliability.md,
    # "A node hangs"). With one node, a timeout is not retried: it would double the wait on it.
    hosts = settings.es_urls
    many = len(hosts) > 1 or settings.es_sniff
    kwargs: dict = {"request_timeout": timeout_s or settings.es_timeout_s, "retry_on_timeout": many,
                    "max_retries": max(1, len(hosts) - 1), "connections_per_node": CONNECTIONS_PER_NODE}
    if settings.es_api_key:
        kwargs["api_key"] = settings.es_api_key
    elif settings.es_username:
        kwargs["basic_auth"] = (settings.es_username, settings.es_password)
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    # orjson writes the bulk requests' vectors several times faster than the json module.
    kwargs["serializer"] = OrjsonSerializer()
    if not settings.es_sniff:
        return _Elasticsearch(hosts, **kwargs)
    # es_sniff: the nodes are asked for the cluster's other nodes at start and again when one fails,
    # so one seed URL is enough; off by default, since behind a proxy or a cloud endpoint the
    # addresses the nodes publish are not the ones to use (elasticsearch-py's docs).
    kwargs.update(sniff_on_node_failure=True, sniff_timeout=kwargs["request_timeout"])
    try:
        return _Elasticsearch(hosts, sniff_on_start=True, **kwargs)
    except TransportError:  # the seed does not answer now: start with it alone, sniff on the first failure
        return _Elasticsearch(hosts, **kwargs)


def live_indices(client: Elasticsearch, alias: str) -> list[str]:
    """The concrete indices `alias` points to, sorted; none when there is no such alias."""
    try:
        return sorted(client.indices.get_alias(name=alias).body)
    except NotFoundError:
        return []


def ensure_small_index(client: Elasticsearch, name: str, properties: dict) -> None:
    """Create `name` unless it exists (a concurrent creator's 400 is fine).

    Small and read by every API process: one shard, a replica wherever a second node exists."""
    if not client.indices.exists(index=name):
        client.options(ignore_status=400).indices.create(
            index=name, settings={"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            mappings={"dynamic": "strict", "properties": properties})


def bulk_write(client: Elasticsearch, actions: Iterable[dict], *, index: str, chunk_size: int,
               verb: str = "rejected", what: str = "documents", then: str = "",
               missing_deletes_ok: bool = False) -> int:
    """Send `actions` to `index` in bulk requests; return how many succeeded.

    Any failed item raises EsFaqError ("Elasticsearch <verb> <count> <what>, first: <item><then>"),
    after every chunk was sent; with `missing_deletes_ok`, a delete of an absent document is no failure."""
    ok, errors = helpers.bulk(client, actions, index=index, chunk_size=chunk_size, raise_on_error=False)
    assert isinstance(errors, list)  # without stats_only: the failed items, not a count
    if missing_deletes_ok:
        errors = [e for e in errors if e.get("delete", {}).get("status") != 404]
    if errors:
        raise EsFaqError(f"Elasticsearch {verb} {len(errors)} {what}, first: {errors[0]}{then}")
    return ok


def unreachable(settings: Settings, exc: Exception | None = None) -> EngineUnavailable:
    detail = f" ({type(exc).__name__})" if exc else ""
    return EngineUnavailable(
        f"Elasticsearch is not reachable at {mask_url(settings.es_url)}{detail}. "
        "Start the local engine with `es-faq engine up`, or point ES_FAQ_ES_URL at your cluster."
    )


def refusal(settings: Settings, exc: ApiError, index: str = "") -> EsFaqError:
    """An answer that is not a result: what passes (429, 5xx) is EngineUnavailable, a 503 to retry;
    what will not until an operator acts (a closed index, credentials, a server that is not
    Elasticsearch, another 4xx) has its own 500 code. Not for 404s: callers know what is missing."""
    if isinstance(exc, UnsupportedProductError):
        return NotElasticsearch(
            f"the server at {mask_url(settings.es_url)} answered without Elasticsearch's X-Elastic-Product "
            "header: it is not Elasticsearch (a web server, or a proxy's own page). Point ES_FAQ_ES_URL at the "
            "cluster's nodes.")
    if exc.status_code >= 500 or exc.status_code == 429:
        return unreachable(settings, exc)
    return refused(settings, exc.status_code, exc.error if isinstance(exc.error, str) else "", index)


def refused(settings: Settings, status: int, kind: str, index: str = "") -> EsFaqError:
    """A 4xx answer with error type `kind` (from an exception, or one item of an `_msearch`)."""
    where = mask_url(settings.es_url)
    if status in (401, 403):
        return EngineRejected(
            f"Elasticsearch at {where} refused es-faq's {'credentials' if status == 401 else 'request'} "
            f"({status}): check es_api_key or es_username/es_password, and that the user may read and write "
            "es-faq's indices.")
    if kind == "index_closed_exception":
        return IndexClosed(
            f"the index behind {index or 'the alias'} is closed: open it (`POST /<index>/_open`) or point the "
            "alias at an open version (`es-faq index rollback`, `es-faq index load FILE`).")
    return EngineRejected(f"Elasticsearch at {where} refused the request ({status} {kind[:80] or 'error'}).")


class _Breaker:
    """The requests to one cluster from this process: failing at once while the whole cluster is known
    not to answer. A single node that hangs or refuses is the node pool's business (make_client): the
    breaker sees a failure only when every node tried failed.

    Closed, every request goes to the engine. A refused connection opens it at once (nothing listens:
    the next request would be refused too); engine_breaker_failures timeouts or 5xx/429 in a row open
    it as well. Open, requests fail without any work for engine_breaker_open_s. Then it half-opens:
    the next caller, whatever it is, first runs the probe (a cheap search of probe_timeout_s at most,
    a search's own timeout unless set shorter) and the probe alone decides; the slot is held for the
    probe only, so a long admin request cannot keep searches refused while it runs (issue 22)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0  # requests in a row that got no answer
        self.refused = False  # the last failure was a refused connection
        self.open_until = 0.0
        self.probing = False
        self._probe_client: Elasticsearch | None = None

    def _open(self, settings: Settings) -> bool:
        return bool(settings.engine_breaker_failures) and (
            self.refused or self.failures >= settings.engine_breaker_failures)

    def _refusal(self, settings: Settings) -> EngineUnavailable:
        why = ("refused the connection" if self.refused else
               f"gave no answer in time to the last {self.failures} requests")
        return EngineUnavailable(
            f"Elasticsearch at {mask_url(settings.es_url)} {why}, so es-faq asks it again only every "
            f"{settings.engine_breaker_open_s:g} s. Check that the cluster runs (`es-faq engine status`) "
            "and its health and load.")

    def admit(self, settings: Settings) -> None:
        """Return when the caller may go to the engine; EngineUnavailable while open, while another
        caller probes, or when this caller's probe fails."""
        with self._lock:
            if not self._open(settings):
                return
            if self.probing or time.monotonic() < self.open_until:
                raise self._refusal(settings)
            self.probing = True
        failure: Exception | None = None
        try:
            self._probe(settings)
        except (TransportError, ApiError) as exc:
            if not isinstance(exc, ApiError) or exc.status_code >= 500 or exc.status_code == 429:
                failure = exc
        finally:
            with self._lock:
                self.probing = False
            self.record(failure, settings)
        if failure is not None:
            raise unreachable(settings, failure)

    def _probe(self, settings: Settings) -> None:
        """A search, not `_cluster/health`: health is answered while the search threads hang (issue 22).
        One shard's first match of the live alias, no cache, so it asks what a search needs."""
        if self._probe_client is None:
            self._probe_client = make_client(settings, timeout_s=settings.probe_timeout_s)
        self._probe_client.search(index=settings.index_alias, size=0, terminate_after=1, track_total_hits=False,
                                  request_cache=False, ignore_unavailable=True, allow_no_indices=True)

    def record(self, failure: Exception | None, settings: Settings) -> None:
        with self._lock:
            if failure is None:
                self.failures, self.refused = 0, False
                return
            self.failures += 1
            self.refused = isinstance(failure, ConnectionError)
            if self._open(settings):
                self.open_until = time.monotonic() + settings.engine_breaker_open_s


_BREAKERS: dict[str, _Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def _breaker(settings: Settings) -> _Breaker:
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(settings.es_url, _Breaker())


def check_engine(settings: Settings) -> None:
    """Before a search's analysis and embedding: EngineUnavailable at once while the breaker is open,
    and when it half-opens, the probe (a cheap search of probe_timeout_s at most) decides. A
    search that cannot reach the engine costs no model work, so clients retrying without pause
    cannot starve the CPU that the node needs to recover (docs/reliability.md)."""
    _breaker(settings).admit(settings)


@contextlib.contextmanager
def engine_errors(settings: Settings):
    """Elasticsearch down, overloaded (429) or failing (5xx) becomes EngineUnavailable (a 503 in the
    API); a 4xx refusal of the request itself is raised as it is. Failures feed the breaker
    (_Breaker): while it is open, requests fail at once."""
    breaker = _breaker(settings)
    breaker.admit(settings)
    failure: Exception | None = None
    try:
        yield
    except (TransportError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status_code < 500 and exc.status_code != 429:
            raise
        failure = exc
        raise unreachable(settings, exc) from None
    finally:
        breaker.record(failure, settings)


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
