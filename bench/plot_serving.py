"""Plot bench/serving_limit.py's output: req/s and p99 against connections, with the limit.

    .venv/bin/python bench/plot_serving.py bench/results/serving/serving-limit.json docs/img/serving-limit.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    data = json.loads(open(sys.argv[1], encoding="utf-8").read())
    runs = data["http"]
    fig, (rate, tail) = plt.subplots(1, 2, figsize=(10, 4))
    for repeat in sorted({r["repeat"] for r in runs}):
        mine = [r for r in runs if r["repeat"] == repeat]
        conns = [r["connections"] for r in mine]
        rate.plot(conns, [r["rps"] for r in mine], marker="o", label=f"es-faq, run {repeat + 1}")
        tail.plot(conns, [r["p99_ms"] for r in mine], marker="o", label=f"run {repeat + 1}")
    rate.axhline(data["limit_rps"], color="black", linestyle="--", label=f"limit {data['limit_rps']} req/s")
    rate.axhline(0.7 * data["limit_rps"], color="grey", linestyle=":", label="0.7 x limit")
    tail.axhline(50, color="grey", linestyle=":", label="50 ms")
    for axis, label in ((rate, "requests/s"), (tail, "p99 ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("connections (wrk)")
        axis.set_ylabel(label)
        axis.legend(fontsize=8)
    fig.suptitle("es-faq over HTTP, default search, 10k atec FAQs, 2 cores")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
