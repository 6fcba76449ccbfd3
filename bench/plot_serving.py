"""Plot bench/serving_limit.py's output: req/s and p99 against connections, with the limit.

One run file: each repeat as a line. Several (sessions compared): each file's median over its repeats, with the
range of the repeats shaded, labelled by its folder.

    .venv/bin/python bench/plot_serving.py bench/results/serving/serving-limit.json docs/img/serving-limit.png
    .venv/bin/python bench/plot_serving.py bench/results/serving-{eleventh,twelfth,thirteenth}/serving-limit.json \
        docs/img/serving-sessions.png
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _one(data: dict, rate, tail) -> None:
    runs = data["http"]
    for repeat in sorted({r["repeat"] for r in runs}):
        mine = [r for r in runs if r["repeat"] == repeat]
        conns = [r["connections"] for r in mine]
        rate.plot(conns, [r["rps"] for r in mine], marker="o", label=f"es-faq, run {repeat + 1}")
        tail.plot(conns, [r["p99_ms"] for r in mine], marker="o", label=f"run {repeat + 1}")
    rate.axhline(data["limit_rps"], color="black", linestyle="--", label=f"limit {data['limit_rps']} req/s")
    rate.axhline(0.7 * data["limit_rps"], color="grey", linestyle=":", label="0.7 x limit")
    tail.axhline(50, color="grey", linestyle=":", label="50 ms")


def _sessions(files: list[Path], rate, tail) -> None:
    for path in files:
        runs = json.loads(path.read_text(encoding="utf-8"))["http"]
        conns = sorted({r["connections"] for r in runs})
        for axis, key in ((rate, "rps"), (tail, "p99_ms")):
            values = [[r[key] for r in runs if r["connections"] == c] for c in conns]
            line, = axis.plot(conns, [statistics.median(v) for v in values], marker="o", label=path.parent.name)
            axis.fill_between(conns, [min(v) for v in values], [max(v) for v in values], alpha=0.15,
                              color=line.get_color())
    tail.axhline(100, color="grey", linestyle=":", label="100 ms (the speed issue's p99 at 8 connections)")
    tail.set_yscale("log")  # one slow first repeat (a worker warming up) would flatten the rest


def main() -> None:
    *inputs, output = sys.argv[1:]
    fig, (rate, tail) = plt.subplots(1, 2, figsize=(10, 4))
    if len(inputs) == 1:
        _one(json.loads(Path(inputs[0]).read_text(encoding="utf-8")), rate, tail)
    else:
        _sessions([Path(p) for p in inputs], rate, tail)
    for axis, label in ((rate, "requests/s"), (tail, "p99 ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("connections (wrk)")
        axis.set_ylabel(label)
        axis.legend(fontsize=8)
    fig.suptitle("es-faq over HTTP, default search, 10k atec FAQs, 2 cores")
    fig.tight_layout()
    fig.savefig(output, dpi=110)


if __name__ == "__main__":
    main()
