"""Plot bench/results/cost_growth.json (bench/cost_growth.py) into docs/img/cost_growth.png.

    bench/plot_cost_growth.py [--results bench/results/cost_growth.json] [--out docs/img/cost_growth.png]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _axes(ax, title: str, ylabel: str | None = None, line: float | None = None) -> None:
    if line is not None:
        ax.axhline(line, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("FAQs")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "cost_growth.json")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "cost_growth.png")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    sizes = sorted(int(k) for k in results if k.isdigit())
    rows = [results[str(n)] for n in sizes]
    default = [r["settings"][0] for r in rows]
    best = [next((s for s in r["settings"] if s["recall_at_10"] >= 0.95), r["settings"][-1]) for r in rows]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(sizes, [r["index_s"] / 60 for r in rows], "o-", label="index time (min)")
    ax.plot(sizes, [r["store_bytes"] / 2**30 for r in rows], "s-", label="disk (GiB)")
    ax.plot(sizes, [r["dense_vector"]["off_heap"]["total_size_bytes"] / 2**30 for r in rows], "^-",
            label="vector files, float32 + int8 + graph (GiB)")
    ax.set_yscale("log")
    _axes(ax, "build cost")
    ax = axes[1]
    ax.plot(sizes, [d["hybrid_p50_ms"] for d in default], "o-", label="p50, default num_candidates")
    ax.plot(sizes, [d["hybrid_p99_ms"] for d in default], "s-", label="p99, default num_candidates")
    ax.plot(sizes, [b["hybrid_p99_ms"] for b in best], "^--", label="p99, first setting with recall >= 0.95")
    _axes(ax, "hybrid search latency", "ms (client side)", 100)
    ax = axes[2]
    ax.plot(sizes, [d["recall_at_10"] for d in default], "o-", label="default num_candidates")
    ax.plot(sizes, [b["recall_at_10"] for b in best], "^--", label="first setting with recall >= 0.95")
    for n, b in zip(sizes, best, strict=True):
        if b.get("rescore_oversample"):
            ax.annotate(f"nc {b['num_candidates']}, rescore x{b['rescore_oversample']:g}", (n, b["recall_at_10"]),
                        textcoords="offset points", xytext=(-40, -14), fontsize=7)
    _axes(ax, "kNN recall@10 vs exact", None, 0.95)
    fig.suptitle("bench/cost_growth.py: one node, 1 shard, int8_hnsw, 512 dims; a shared 2-core machine, load "
                 "differs per size (docs/benchmarks.md, Cost growth to 10M FAQs)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
