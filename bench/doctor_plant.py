"""Plant known collisions in a copy of a faq-bench knowledge base: split some FAQs' questions into two FAQs.

Writes OUT/faqs.jsonl (the knowledge base with the planted twins) and OUT/planted.json (the planted
pairs, and each FAQ's split, taken from the bench's queries, so a threshold can be chosen on
train+dev FAQs and reported on test ones). Seeded: the same arguments plant the same pairs.

    python bench/doctor_plant.py ../shared/data/faq-bench/diac /tmp/diac-planted --plant 200 --seed 14
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--plant", type=int, default=200, help="FAQs to split (each needs 2+ question texts)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    faqs = [json.loads(line) for line in (args.bench / "faqs.jsonl").open(encoding="utf-8") if line.strip()]
    split: dict[str, str] = {}
    for line in (args.bench / "queries.jsonl").open(encoding="utf-8"):
        query = json.loads(line)
        for faq_id in query.get("relevant", []) + query.get("near_miss", []):
            split.setdefault(faq_id, query["split"])
    splittable = sorted(f["id"] for f in faqs if f.get("similar_questions"))
    if len(splittable) < args.plant:
        parser.error(f"only {len(splittable)} FAQs have 2+ questions; plant at most that many")
    chosen = set(random.Random(args.seed).sample(splittable, args.plant))
    out, pairs = [], []
    for faq in faqs:
        if faq["id"] not in chosen:
            out.append(faq)
            continue
        texts = [faq["question"], *faq["similar_questions"]]
        keep = (len(texts) + 1) // 2
        twin_id = f"{faq['id']}-planted"
        out.append({**faq, "similar_questions": texts[1:keep]})
        out.append({**faq, "id": twin_id, "question": texts[keep], "similar_questions": texts[keep + 1:]})
        pairs.append(sorted([faq["id"], twin_id]))
        split[twin_id] = split.get(faq["id"], "train")
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "faqs.jsonl").open("w", encoding="utf-8") as fh:
        for faq in out:
            fh.write(json.dumps(faq, ensure_ascii=False) + "\n")
    (args.out / "planted.json").write_text(json.dumps(
        {"bench": str(args.bench), "seed": args.seed, "pairs": pairs,
         "split": {f["id"]: split.get(f["id"], "train") for f in out}}, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(out)} FAQs, {len(pairs)} planted pairs -> {args.out}")


if __name__ == "__main__":
    main()
