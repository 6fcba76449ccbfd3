"""Dev-sample learning curves of cross-encoder runs side by side (the 400-pair samples each run evaluates every
`eval_every` steps, from its log.jsonl), one panel a corpus: how a recipe change moves them over one run.

    python bench/teacher_curves.py docs/img/teacher-curves.png bench/results/reranker-zh-s4a \
        bench/results/reranker-zh-s5t ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CORPORA = ("bq", "lcqmc", "afqmc", "pawsx-zh")


def curve(folder: Path) -> list[tuple[int, dict]]:
    rows = [json.loads(line) for line in (folder / "log.jsonl").open(encoding="utf-8")]
    return [(r["step"], {c: m["auc"] for c, m in r["dev"].items()}) for r in rows if "dev" in r]


def main() -> None:
    out, folders = Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]]
    fig, axes = plt.subplots(1, len(CORPORA), figsize=(4 * len(CORPORA), 3.4), sharex=True)
    for folder in folders:
        points = curve(folder)
        for ax, corpus in zip(axes, CORPORA, strict=True):
            ax.plot([s for s, _ in points], [d[corpus] for _, d in points], marker="o", label=folder.name)
    for ax, corpus in zip(axes, CORPORA, strict=True):
        ax.set_title(f"{corpus} dev sample (400 pairs)")
        ax.set_xlabel("step (16 pairs, both orders)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ROC-AUC, one order")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
