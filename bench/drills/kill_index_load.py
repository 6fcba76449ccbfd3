#!/usr/bin/env python3
"""`kill -9` of `es-faq index load` mid-build, then the next writers: what is left, what clears it, how long.

    ES_FAQ_ES_URL=... bench/drills/kill_index_load.py [--faqs 2000] [--lock-ttl 5] [--alias drill-kill-load]

Loads a one-FAQ version, starts a load of --faqs synthetic FAQs and SIGKILLs it once its new version
holds documents, lists the versions, then runs a new `index load` (which waits out the dead loader's
lease, --lock-ttl, and deletes its version). The alias's indices are deleted at the end."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, emit


def es_faq(*args: str, env: dict) -> tuple[float, dict | list]:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "es_faq", *args], env=env, cwd=REPO, capture_output=True, text=True,
                         check=True)
    return round(time.monotonic() - started, 2), json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faqs", type=int, default=2000)
    parser.add_argument("--lock-ttl", type=float, default=5.0)
    parser.add_argument("--alias", default="drill-kill-load")
    args = parser.parse_args()

    from es_faq.config.load import load_settings
    from es_faq.engine.client import make_client
    from es_faq.kb.index import versions

    client = make_client(load_settings())
    env = {**os.environ, "ES_FAQ_WRITER_LOCK_TTL_S": str(args.lock_ttl)}
    work = Path(tempfile.mkdtemp(prefix="es-faq-drill-"))
    small, big = work / "small.jsonl", work / "big.jsonl"
    small.write_text(json.dumps({"id": "1", "question": "怎么还款"}, ensure_ascii=False) + "\n")
    big.write_text("".join(json.dumps({"id": str(i), "question": f"第{i}号业务怎么办理"}, ensure_ascii=False) + "\n"
                           for i in range(args.faqs)))
    try:
        es_faq("index", "load", str(small), "--alias", args.alias, env=env)
        proc = subprocess.Popen([sys.executable, "-m", "es_faq", "index", "load", str(big), "--alias", args.alias],
                                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        orphan = None
        while orphan is None and proc.poll() is None:
            for v in versions(client, args.alias):
                stats = client.indices.stats(index=v["index"], metric="indexing")["indices"].get(v["index"], {})
                if not v["complete"] and stats.get("primaries", {}).get("indexing", {}).get("index_total", 0) > 0:
                    orphan = v["index"]
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait()
        left = versions(client, args.alias)
        seconds, report = es_faq("index", "load", str(small), "--alias", args.alias, env=env)
        emit({"faqs": args.faqs, "lock_ttl_s": args.lock_ttl, "orphan": orphan,
              "after_kill": [{k: v[k] for k in ("index", "faqs", "live", "complete")} for v in left],
              "next_load_s": seconds, "seconds_since_kill": round(time.monotonic() - killed_at, 2),
              "orphans_deleted": report["orphans_deleted"],
              "after_next_load": [{k: v[k] for k in ("index", "faqs", "live", "complete")}
                                  for v in versions(client, args.alias)]})
    finally:
        names = [row["index"] for row in client.cat.indices(index=f"{args.alias}-*", format="json", h="index").body]
        if names:
            client.options(ignore_status=404).indices.delete(index=",".join(names))


if __name__ == "__main__":
    main()
