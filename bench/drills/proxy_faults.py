#!/usr/bin/env python3
"""Faults between es-faq and Elasticsearch: `es-faq serve` reaches the node through a fault-injecting
proxy (tests/fault_proxy.py) while clients search and read FAQs through the API. Phase by phase the
proxy passes through, then for each fault answers 401, 403, an HTML page without X-Elastic-Product,
a 502, hangs, resets the connection or answers slowly, each followed by a pass-through phase.

    ES_FAQ_ES_URL=http://127.0.0.1:9201 bench/drills/proxy_faults.py [--clients 4] [--seconds 8]
        [--recover 8] [--faults 401,403,html,502,hang,reset,slow] [--slow-s 1.0] [--alias drill-proxy]

The alias is given the demo FAQs (straight to the node) unless it exists. Prints JSON per phase:
the statuses, the error codes of the JSON bodies with whether they carried Retry-After, anything
that was not a documented error (`internal`, a body that is not the error JSON, a code outside the
fault's, Retry-After on anything but a 503 or missing from one), and after each fault how long until
a search was served again. A request counts in a phase when it began and ended in it."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import requests  # noqa: E402
from common import REPO, Workers, emit, serve, summary  # noqa: E402

from tests.fault_proxy import FaultProxy  # noqa: E402

# What each fault may give: its documented error codes (docs/reliability.md); a 503
# (engine_unavailable) says when to come back, the 500s of what an operator must fix do not. Passing
# through, the breaker a fault opened still refuses until its probe finds the node again; slowly, a
# search still over search_timeout_s is a timeout.
EXPECTED = {"401": {"engine_rejected"}, "403": {"engine_rejected"}, "html": {"not_elasticsearch"},
            "502": {"engine_unavailable"}, "hang": {"engine_unavailable"}, "reset": {"engine_unavailable"},
            "slow": {"engine_unavailable"}, "pass": {"engine_unavailable"}}
QUERIES = ["可以推迟还小橙花吗", "忘了支付密码", "怎么开发票", "账户被冻结了"]


class Clients(Workers):
    """`n` clients through the API: searches, and every fourth request a FAQ read; 0.25 s pause after
    a failure (as a client honouring Retry-After would), 0.05 s after a success."""

    def __init__(self, url: str, n: int, faq_id: str):
        self.url, self.faq_id = url, faq_id
        self.outcomes: list[tuple] = []
        super().__init__(n)

    def work(self, i: int) -> None:
        session = requests.Session()
        sent = 0
        while not self._stop.is_set():
            sent += 1
            kind = "faq" if sent % 4 == 0 else "search"
            started = time.monotonic()
            try:
                if kind == "faq":
                    answer = session.get(f"{self.url}/v1/faqs/{self.faq_id}", timeout=30)
                else:
                    answer = session.post(f"{self.url}/v1/search", json={"query": QUERIES[(i + sent) % 4], "k": 3},
                                          timeout=30)
                status, code, retry_after = answer.status_code, _code(answer), answer.headers.get("Retry-After")
            except requests.RequestException as exc:
                status, code, retry_after = None, type(exc).__name__, None
            self.outcomes.append((started, time.monotonic() - started, kind, status, code, retry_after))
            self._stop.wait(0.05 if status == 200 else 0.25)


def _code(answer: requests.Response) -> str | None:
    """The error code of a JSON error body; `not-json` for anything else that is not a 200."""
    if answer.status_code == 200:
        return None
    try:
        return answer.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "not-json"


def phase_report(rows: list[tuple], fault: str) -> dict:
    statuses = Counter(f"{kind} {status}" for _, _, kind, status, _, _ in rows)
    codes = Counter(f"{code} (Retry-After {retry_after})" if retry_after else code
                    for _, _, _, _, code, retry_after in rows if code)
    undocumented = sorted({code for *_, code, _ in rows if code and code not in EXPECTED[fault]})
    wrong_retry = sorted({code for *_, status, code, retry_after in rows
                          if code and (status == 503) != bool(retry_after)})
    return {"requests": len(rows), "statuses": dict(sorted(statuses.items())), "errors": dict(sorted(codes.items())),
            "undocumented": undocumented, "retry_after_wrong": wrong_retry,
            "latency_200": summary([seconds for _, seconds, _, status, _, _ in rows if status == 200])}


def prepare(alias: str) -> str:
    """The alias with the demo FAQs (loaded straight to the node unless it exists); one FAQ id."""
    from es_faq.config.load import load_settings
    from es_faq.engine.client import make_client
    from es_faq.kb.faq import Faq, read_jsonl
    from es_faq.kb.index import build
    from es_faq.search.analyze import Analyzer
    from es_faq.search.embed import Embedder

    settings = load_settings()
    client = make_client(settings)
    faqs = [faq for faq in read_jsonl(REPO / "demo" / "faqs.jsonl") if isinstance(faq, Faq)]
    if not client.indices.exists_alias(name=alias):
        build(client, settings, faqs, Analyzer(settings), Embedder(settings), alias=alias, progress=False)
    return faqs[0].id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8, help="each fault phase")
    parser.add_argument("--recover", type=float, default=8,
                        help="each pass-through phase after a fault; 0: none between the faults")
    parser.add_argument("--faults", default="401,403,html,502,hang,reset,slow")
    parser.add_argument("--slow-s", type=float, default=1.0, help="the delay of the slow phase")
    parser.add_argument("--alias", default="drill-proxy")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    faults = args.faults.split(",")
    faq_id = prepare(args.alias)
    upstream = os.environ.get("ES_FAQ_ES_URL", "http://127.0.0.1:9200").split(",")[0]
    report: dict = {"clients": args.clients, "fault_s": args.seconds, "recover_s": args.recover,
                    "slow_s": args.slow_s, "load_before": os.getloadavg(), "phases": []}
    with FaultProxy(upstream, slow_s=args.slow_s) as proxy:
        env = {"ES_FAQ_ES_URL": proxy.url, "ES_FAQ_INDEX_ALIAS": args.alias, "ES_FAQ_DECIDE_DEPTH": "0"}
        with serve(env, Path("/tmp/es-faq-drill-proxy-faults.log"), args.workers) as url:
            clients = Clients(url, args.clients, faq_id).start()
            readiness: list[tuple[float, int | None]] = []
            done = threading.Event()
            threading.Thread(target=_ready_probe, args=(url, done, readiness), daemon=True).start()
            # --recover 0: one fault straight after another, and one pass-through phase at the end.
            timeline = [("pass", args.recover or args.seconds)]
            for fault in faults:
                timeline += [(fault, args.seconds)] + ([("pass", args.recover)] if args.recover else [])
            timeline += [] if args.recover else [("pass", args.seconds)]
            for fault, seconds in timeline:
                proxy.fault = fault
                began = time.monotonic()
                time.sleep(seconds)
                report["phases"].append({"fault": fault, "began": began, "ended": time.monotonic()})
            done.set()
            clients.stop()
    for phase in report["phases"]:
        began, ended = phase.pop("began"), phase.pop("ended")
        # A request counts in the phase it began and ended in: the proxy saw every engine call of it
        # under that phase's fault. Those that ran across a change are only counted.
        rows = [o for o in clients.outcomes if began <= o[0] and o[0] + o[1] < ended]
        phase.update(phase_report(rows, phase["fault"]))
        phase["across_the_change"] = sum(began <= o[0] < ended <= o[0] + o[1] for o in clients.outcomes)
        phase["readyz"] = dict(Counter(str(status) for at, status in readiness if began <= at < ended))
        if phase["fault"] == "pass":
            served = [o[0] + o[1] for o in rows if o[3] == 200 and o[2] == "search"]
            phase["first_search_200_after_s"] = round(min(served) - began, 2) if served else None
    report["load_after"] = os.getloadavg()
    report["documented"] = all(not p["undocumented"] and not p["retry_after_wrong"] for p in report["phases"])
    report["recovered"] = all(p.get("first_search_200_after_s") is not None for p in report["phases"]
                              if p["fault"] == "pass")
    emit(report)


def _ready_probe(url: str, done: threading.Event, into: list) -> None:
    while not done.is_set():
        at = time.monotonic()
        try:
            into.append((at, requests.get(f"{url}/readyz", timeout=5).status_code))
        except requests.RequestException:
            into.append((at, None))
        done.wait(1.0)


if __name__ == "__main__":
    main()
