"""A seeded typo bench from a faq-bench split: homophone and near-shape substitutions in the queries.

    .venv/bin/python bench/typo_bench.py --bench ../shared/data/faq-bench/diac --split test
    es-faq eval --bench bench/out/typo/diac --split test      # noisy; the clean run is the original bench

The output directory has the bench's own name and links its faqs.jsonl, so `es-faq eval` reuses the
bench's index. Each query gets one substitution per `--every` Chinese characters (at least one): a
homophone (same toneless pinyin, another character the bench itself uses, drawn by frequency, as an
input method offers them) or, with probability `--shape`, a near-shape character from the table
below when the query holds one. Each row keeps its clean form in `clean` and the changes in `typos`.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from pypinyin import Style, lazy_pinyin

# Near-shape confusions (each way), written by hand: characters of customer-service questions.
SHAPES = ("贷货 已己 己巳 未末 人入 日曰 干千 土士 体休 拨拔 侯候 准淮 密蜜 码玛 根银 线钱 辨辩 账帐 "
          "微徽 借惜 还坏 款欵 额頟 卡长 户护 冲仲 期斯 到倒 扣拍 免兔 利刊 息悤 问间 请清 办为 "
          "询洵 费贵 绑綁 赔陪 险检 保堡 单半 号亏 理埋 查杳 转专 提捉 现观 余佘 开升 关美 限很")


def shape_table() -> dict[str, list[str]]:
    table: dict[str, list[str]] = defaultdict(list)
    for pair in SHAPES.split():
        a, b = pair
        table[a].append(b)
        table[b].append(a)
    return table


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def homophones(texts: list[str]) -> tuple[dict[str, list[str]], Counter]:
    """Toneless pinyin -> the bench's characters with that reading; and how often each occurs."""
    freq: Counter = Counter(ch for text in texts for ch in text if is_han(ch))
    by_sound: dict[str, list[str]] = defaultdict(list)
    for ch in sorted(freq):
        by_sound[lazy_pinyin(ch, style=Style.NORMAL)[0]].append(ch)
    return by_sound, freq


def corrupt(query: str, rng: random.Random, by_sound: dict, freq: Counter, shapes: dict, every: int,
            shape_share: float) -> tuple[str, list[list[str]]]:
    chars = list(query)
    positions = [i for i, ch in enumerate(chars) if is_han(ch)]
    if not positions:
        return query, []
    changes = []
    for _ in range(max(1, len(positions) // every)):
        shaped = [i for i in positions if chars[i] in shapes]
        if shaped and rng.random() < shape_share:
            i = rng.choice(shaped)
            new = rng.choice(shapes[chars[i]])
        else:
            i = rng.choice(positions)
            sound = lazy_pinyin(chars[i], style=Style.NORMAL)[0]
            options = [c for c in by_sound.get(sound, []) if c != chars[i]]
            if not options:
                continue
            new = rng.choices(options, weights=[freq[c] for c in options])[0]
        changes.append([chars[i], new])
        chars[i] = new
        positions.remove(i)
        if not positions:
            break
    return "".join(chars), changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/out/typo/<bench name>")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--every", type=int, default=8, help="one substitution per this many Chinese characters")
    parser.add_argument("--shape", type=float, default=0.3, help="share of near-shape substitutions")
    args = parser.parse_args()
    bench = args.bench.resolve()
    out = args.out or Path(__file__).parent / "out" / "typo" / bench.name
    rows = [json.loads(line) for line in (bench / "queries.jsonl").open(encoding="utf-8") if line.strip()]
    faqs = [json.loads(line) for line in (bench / "faqs.jsonl").open(encoding="utf-8") if line.strip()]
    texts = [r["query"] for r in rows] + [t for f in faqs for t in [f["question"], *f.get("similar_questions", [])]]
    by_sound, freq = homophones(texts)
    shapes = shape_table()
    rng = random.Random(args.seed)
    out.mkdir(parents=True, exist_ok=True)
    link = out / "faqs.jsonl"
    link.unlink(missing_ok=True)
    link.symlink_to(bench / "faqs.jsonl")
    changed = total = 0
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            if row.get("split") != args.split:
                continue
            noisy, changes = corrupt(row["query"], rng, by_sound, freq, shapes, args.every, args.shape)
            total += 1
            changed += noisy != row["query"]
            fh.write(json.dumps({**row, "query": noisy, "clean": row["query"], "typos": changes},
                                ensure_ascii=False) + "\n")
    print(json.dumps({"out": str(out), "split": args.split, "queries": total, "changed": changed,
                      "seed": args.seed, "every": args.every, "shape": args.shape}))


if __name__ == "__main__":
    main()
