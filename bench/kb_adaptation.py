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


def near_misses(generator, sources: list[tuple[str, str]], seed: int, split: str) -> list[tuple[int, dict]]:
    """One generated near-miss of each (text, its FAQ's id) source that the generator can edit, as a `split`
    near-miss query of that FAQ (without its qid), with the source's index."""
    from es_faq.train.hardcases import TRAINED_NEGATIVE, cases

    made = {c.text: c for c in cases(generator, [(text, text) for text, _ in sources], seed, 0.0, TRAINED_NEGATIVE)}
    return [(i, {"query": made[text].edited, "relevant": [], "near_miss": [faq_id], "split": split,
                 "kind": "near_miss", "category": made[text].category})
            for i, (text, faq_id) in enumerate(sources) if text in made]


def train_near_misses(generator, faqs: list[dict], seed: int) -> list[dict]:
    """A generated near-miss of every question of each FAQ with two or more, as train queries."""
    owner = {t: f["id"] for f in faqs if f["similar_questions"] for t in (f["question"], *f["similar_questions"])}
    rows = near_misses(generator, list(owner.items()), seed, "train")
    return [{"qid": f"kb-train-near-{n}", **row} for n, (_, row) in enumerate(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faqs", type=Path, help="the knowledge base (faqs.jsonl)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=20, help="which similar question each FAQ holds out")
    parser.add_argument("--near-misses", action="store_true",
                        help="add a generated near-miss of each question to the train groups (OUT/full, OUT/held-out)")
    args = parser.parse_args()
    faqs = [json.loads(line) for line in args.faqs.open(encoding="utf-8") if line.strip()]
    rng = random.Random(args.seed)

    from es_faq.train.hardcases import Generator

    generator = Generator([t for f in faqs for t in (f["question"], *f["similar_questions"])])
    full = [group_query(i, f, f["similar_questions"][0], "train") for i, f in enumerate(faqs) if f["similar_questions"]]
    if args.near_misses:
        full += train_near_misses(generator, faqs, args.seed)
    write(args.out / "full", faqs, full)

    kept, queries = [], []
    for i, faq in enumerate(faqs):
        similar = list(faq["similar_questions"])
        if similar:
            queries.append(group_query(i, faq, similar.pop(rng.randrange(len(similar))), "test"))
            if similar:
                queries.append(group_query(i, faq, similar[0], "train"))
        kept.append({**faq, "similar_questions": similar})
    if args.near_misses:
        queries += train_near_misses(generator, kept, args.seed)
    write(args.out / "held-out", kept, queries)

    held = [q for q in queries if q["split"] == "test"]
    dev = [{**q, "split": "dev"} for q in held]
    dev += [{"qid": f"{held[i]['qid']}-near", **row}
            for i, row in near_misses(generator, [(q["query"], q["relevant"][0]) for q in held], args.seed, "dev")]
    write(args.out / "calibration", kept, dev)
    print(json.dumps({"faqs": len(faqs), "train groups": sum(q["kind"] == "paraphrase" for q in full),
                      "held out": len(held), "generated near-misses": len(dev) - len(held),
                      "train near-misses": sum(q["kind"] == "near_miss" for q in full)}))


if __name__ == "__main__":
    main()
