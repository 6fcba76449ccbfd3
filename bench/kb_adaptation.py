"""A knowledge base as faq-bench directories, to teach the cross-encoder that knowledge base's own FAQs
(`es-faq train reranker --init reranker-zh --bench OUT/full`) and to check what it learned on questions it
did not see (OUT/held-out). docs/benchmarks.md, "Teaching the verifier a knowledge base".

    python bench/kb_adaptation.py demo/faqs.jsonl /tmp/kb-demo

OUT/full: the knowledge base unchanged, and one train "query" per FAQ with two or more questions (its first
similar question), so that every such FAQ is a train group: its questions become positives among themselves
and the FAQs the search ranks nearest its mined negatives. No query of the bench's own splits is used.
OUT/held-out: one similar question of each such FAQ (seeded) taken out of the knowledge base and kept as a
test paraphrase of it; the rest as in OUT/full.
OUT/calibration: OUT/held-out's knowledge base, with its held-out questions as dev paraphrases and one near-miss
of each, made by the hard-case generator (es_faq/train/hardcases.py, built on the knowledge base's texts), as dev
near-misses of the FAQ they came from: labelled queries of the knowledge base's own domain for `es-faq calibrate`.
"""

import argparse
import json
import random
from pathlib import Path


def write(directory: Path, faqs: list[dict], queries: list[dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (("faqs.jsonl", faqs), ("queries.jsonl", queries)):
        with (directory / name).open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def group_query(number: int, faq: dict, text: str, split: str) -> dict:
    return {"qid": f"kb-{split}-{number}", "query": text, "relevant": [faq["id"]], "split": split,
            "kind": "paraphrase"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faqs", type=Path, help="the knowledge base (faqs.jsonl)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=20, help="which similar question each FAQ holds out")
    args = parser.parse_args()
    faqs = [json.loads(line) for line in args.faqs.open(encoding="utf-8") if line.strip()]
    rng = random.Random(args.seed)

    full = [group_query(i, f, f["similar_questions"][0], "train") for i, f in enumerate(faqs) if f["similar_questions"]]
    write(args.out / "full", faqs, full)

    kept, queries = [], []
    for i, faq in enumerate(faqs):
        similar = list(faq["similar_questions"])
        if similar:
            held = similar.pop(rng.randrange(len(similar)))
            queries.append(group_query(i, faq, held, "test"))
            if similar:
                queries.append(group_query(i, faq, similar[0], "train"))
        kept.append({**faq, "similar_questions": similar})
    write(args.out / "held-out", kept, queries)

    from es_faq.train.hardcases import TRAINED_NEGATIVE, Generator, cases

    held = [q for q in queries if q["split"] == "test"]
    generator = Generator([t for f in faqs for t in (f["question"], *f["similar_questions"])])
    edits = {c.text: c for c in cases(generator, [(q["query"], q["query"]) for q in held], args.seed, 0.0,
                                      TRAINED_NEGATIVE)}
    dev = [{**q, "split": "dev"} for q in held]
    dev += [{"qid": f"{q['qid']}-near", "query": edits[q["query"]].edited, "relevant": [],
             "near_miss": q["relevant"], "split": "dev", "kind": "near_miss", "category": edits[q["query"]].category}
            for q in held if q["query"] in edits]
    write(args.out / "calibration", kept, dev)
    held_out = sum(q["split"] == "test" for q in queries)
    print(json.dumps({"faqs": len(faqs), "train groups": len(full), "held out": held_out,
                      "generated near-misses": len(dev) - len(held)}))


if __name__ == "__main__":
    main()
