"""Labelled (text, text, label) pairs for the cross-encoder: pair corpora and a faq-bench's train groups.

Pair corpora are `text1<TAB>text2<TAB>label` files (../shared/data/pairs). A bench gives pairs from
its train split only, so its dev and test groups stay unseen: each paraphrase query with its FAQ's
questions and with the group's other paraphrases (positives), each near-miss query with the FAQ it
only looks like (hard negatives, the decision's hardest case), and the FAQs the hybrid search ranks
above or near the gold one (mined negatives).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError
from ..kb.faq import Faq, read_faqs


@dataclass(frozen=True)
class Pair:
    text1: str
    text2: str
    label: int
    source: str  # corpus or bench part it came from, for the data card in training.json


def read_pairs(path: Path, source: str | None = None, limit: int | None = None, seed: int = 13) -> list[Pair]:
    """A pair TSV; a malformed row stops the read with its line number."""
    if not path.exists():
        raise DataError(f"no pair file {path}; expected text1<TAB>text2<TAB>label rows")
    name = source or path.parent.name
    pairs = []
    with path.open(encoding="utf-8", newline="") as fh:
        for number, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) != 3 or row[2] not in ("0", "1") or not row[0].strip() or not row[1].strip():
                raise DataError(f"{path}:{number}: expected text1<TAB>text2<TAB>0|1, got {row!r}")
            pairs.append(Pair(row[0].strip(), row[1].strip(), int(row[2]), name))
    if limit and limit < len(pairs):
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs


def write_pair_cache(path: Path, pairs: list[Pair]) -> None:
    """Pairs a run built (mined, generated) kept in its directory as text1<TAB>text2<TAB>label<TAB>source rows;
    written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    with partial.open("w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(f"{p.text1}\t{p.text2}\t{p.label}\t{p.source}\n")
    partial.rename(path)


def read_pair_cache(path: Path) -> list[Pair]:
    out = []
    for line in path.open(encoding="utf-8"):
        a, b, label, source = line.rstrip("\n").split("\t")
        out.append(Pair(a, b, int(label), source))
    return out


def corpus_file(pairs_dir: Path, corpus: str, split: str) -> Path:
    return pairs_dir / corpus / f"{split}.tsv"


@dataclass
class BenchGroup:
    """One FAQ of the train split: its questions, the train queries that ask it, the ones that only look like it."""

    faq: Faq
    paraphrases: list[str]
    near_misses: list[str]


def bench_groups(bench: Path, split: str = "train") -> list[BenchGroup]:
    from ..evaluation.bench import load_queries  # here: the trainers run where no search stack is installed

    faqs = {faq.id: faq for faq in read_faqs(bench / "faqs.jsonl")}
    groups: dict[str, BenchGroup] = {}
    for row in load_queries(bench, split):
        for fid, kind in [(f, "paraphrases") for f in row["relevant"]] + \
                         [(f, "near_misses") for f in row.get("near_miss", [])]:
            if fid in faqs:
                group = groups.setdefault(fid, BenchGroup(faqs[fid], [], []))
                getattr(group, kind).append(row["query"])
    return [groups[k] for k in sorted(groups)]


def group_pairs(groups: list[BenchGroup], source: str, seed: int = 13) -> list[Pair]:
    """Positives among a group's equivalent texts; near-misses against them as negatives."""
    rng = random.Random(seed)
    pairs = []
    for group in groups:
        equivalent = list(dict.fromkeys([*group.faq.texts, *group.paraphrases]))
        for i, a in enumerate(equivalent):
            for b in equivalent[i + 1:]:
                pairs.append(Pair(a, b, 1, f"{source}:paraphrase"))
        for miss in group.near_misses:
            # Against the standard question (what the knowledge base holds) and one other equivalent text.
            others = [t for t in equivalent if t != group.faq.question]
            for text in [group.faq.question, *rng.sample(others, min(1, len(others)))]:
                pairs.append(Pair(miss, text, 0, f"{source}:near_miss"))
    return pairs


def mined_pairs(searcher, index: str, groups: list[BenchGroup], source: str, per_query: int = 2,
                depth: int = 10, progress: bool = True) -> list[Pair]:
    """Each equivalent text of a group, searched (hybrid) with its own FAQ hidden: the best-ranked
    other FAQs are negatives a retriever confuses with the gold one."""
    pairs = []
    work = [(text, g.faq.id) for g in groups for text in dict.fromkeys([*g.faq.texts, *g.paraphrases])]
    for text, fid in tqdm(work, desc=f"mining {source} negatives", unit="query", disable=not progress):
        result = searcher.search(text, depth, "hybrid", index=index, matches=False, exclude=[fid])
        for hit in result.hits[:per_query]:
            pairs.append(Pair(text, hit.question, 0, f"{source}:mined"))
    return pairs


def dedupe(pairs: list[Pair]) -> list[Pair]:
    """One row per unordered text pair; a pair seen with both labels is dropped (label noise)."""
    labels: dict[frozenset, set[int]] = {}
    first: dict[frozenset, Pair] = {}
    for p in pairs:
        key = frozenset((p.text1, p.text2))
        labels.setdefault(key, set()).add(p.label)
        first.setdefault(key, p)
    return [p for key, p in first.items() if len(labels[key]) == 1 and p.text1 != p.text2]
