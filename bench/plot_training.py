"""The dev metrics a training run logged, over its steps (PNG).

    python bench/plot_training.py ~/.cache/es-faq/train-runs/reranker-zh docs/img/reranker-zh-training.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    log = [json.loads(line) for line in (args.run_dir / "log.jsonl").open(encoding="utf-8")]
    steps = [e["step"] for e in log]
    recipe_file = args.run_dir / "recipe.json"
    recipe = json.loads(recipe_file.read_text(encoding="utf-8")) if recipe_file.exists() else {}
    per_step = f"{recipe['batch_size']} pairs" if "batch_size" in recipe else "batch 32"
    if recipe.get("both_orders"):
        per_step += ", both orders"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for corpus in log[0]["dev"]:
        # Older runs logged fractions, newer ones percent: show percent.
        scale = [100 if e["dev"][corpus]["auc"] <= 1 else 1 for e in log]
        left.plot(steps, [e["dev"][corpus]["accuracy"] * s for e, s in zip(log, scale, strict=True)],
                  marker="o", label=corpus)
        right.plot(steps, [e["dev"][corpus]["auc"] * s for e, s in zip(log, scale, strict=True)],
                   marker="o", label=corpus)
    left.set_title("dev accuracy at logit 0 (%)", fontsize=10)
    right.set_title("dev ROC-AUC (%)", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel(f"step ({per_step})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    loss = right.twinx()
    loss.plot(steps, [e["loss"] for e in log], color="grey", linestyle=":", label="train loss")
    loss.set_ylabel("train loss (dotted)", fontsize=8)
    fig.suptitle(f"{args.run_dir.name}: dev samples while training", fontsize=10)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png)


if __name__ == "__main__":
    main()
