"""Prometheus metrics, correct across gunicorn workers (prometheus_client multiprocess mode).

gunicorn_conf.py sets PROMETHEUS_MULTIPROC_DIR before the workers start; each worker then writes
its samples to files there, and /metrics sums them. Without it (tests, `flask run`), the process's
own registry is served."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

# Seconds: a search's p50-p95 is 20-100 ms on 2 cores (docs/benchmarks.md); a refused connection
# to a dead node answers in about a millisecond.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("es_faq_http_requests_total", "HTTP requests answered, by endpoint, method and status",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("es_faq_http_request_duration_seconds", "Time to answer a request, by endpoint, method and status",
                    ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS)
STAGES = Histogram("es_faq_search_stage_duration_seconds", "Time in each stage of the query path",
                   ["stage"], buckets=STAGE_BUCKETS)
ES_ERRORS = Counter("es_faq_es_errors_total", "Elasticsearch failures seen while answering, by endpoint and error code",
                    ["endpoint", "code"])
QUERYLOG_LOGGED = Counter("es_faq_querylog_logged_total", "Query-log documents written, by kind (search, feedback)",
                          ["kind"])
QUERYLOG_DROPPED = Counter("es_faq_querylog_dropped_total",
                           "Query-log documents dropped, by reason (queue_full, write_failed)", ["reason"])

DECISIONS = Counter("es_faq_search_decisions_total", "Searches by decision (answer, suggest, no_match)",
                    ["decision"])

PARTIAL = Counter("es_faq_search_partial_total",
                  "Searches whose shards failed, by outcome: whole_on_retry (sent again, whole), served (partial: "
                  "true), refused (503 partial_results)", ["outcome"])

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    # Labels stay bounded whatever clients send: unknown paths are "unmatched", odd methods "other".
    labels = (endpoint, method if method in METHODS else "other", str(status))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(seconds)


def observe_stages(timings_ms: dict) -> None:
    for stage, ms in timings_ms.items():
        if stage != "total":
            STAGES.labels(stage).observe(ms / 1000)


def observe_decision(action: str) -> None:
    DECISIONS.labels(action).inc()


def observe_shards(retried: bool, partial: bool) -> None:
    if retried:
        PARTIAL.labels("served" if partial else "whole_on_retry").inc()


def exposition() -> tuple[bytes, str]:
    """The text format and its content type, summed over every worker when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
