"""Training examples from a faq-bench directory, with hard negatives mined from the live index.

Queries are the bench's train split plus the knowledge base's own similar questions (each one a
paraphrase of its FAQ: what a real team has before it has any query log). Negatives are the
question texts of FAQs that the hybrid search ranks high for the query but that are wrong.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError
from ..evaluation.bench import load_queries
from ..kb.faq import Faq, read_faqs
from ..search.pipeline import Searcher
from ..search.rerank import candidate_texts


@dataclass
class Group:
    query: str  # as analysed (normalised, rewritten): what the models see at run time
    positives: list[str]
    negatives: list[str]  # hard first, in the order the hybrid search ranked them


def training_queries(bench: Path, faqs: dict[str, Faq], limit: int | None = None,
                     seed: int = 13) -> list[tuple[str, set[str]]]:
    """(query, gold FAQ ids): the train split, then every similar question of the knowledge base."""
    try:
        pairs = [(row["query"], set(row["relevant"])) for row in load_queries(bench, "train")]
    except DataError:  # a knowledge base without labelled queries still has its similar questions
        pairs = []
    pairs += [(text, {faq.id}) for faq in faqs.values() for text in faq.similar_questions]
    if limit:
        pairs = random.Random(seed).sample(pairs, min(limit, len(pairs)))
    return pairs


def mine(searcher: Searcher, index: str, bench: Path, depth: int = 30, limit: int | None = None,
         seed: int = 13, progress: bool = True) -> list[Group]:
    faqs = {faq.id: faq for faq in read_faqs(bench / "faqs.jsonl")}
    groups = []
    queries = training_queries(bench, faqs, limit, seed)
    for query, gold in tqdm(queries, desc="mining hard negatives", unit="query", disable=not progress):
        result = searcher.search(query, depth, "hybrid", index=index, matches=True)
        positives = [t for fid in sorted(gold) if fid in faqs for t in faqs[fid].texts if t != query]
        if not positives or not result.analysis.text:
            continue
        seen = set(positives)
        negatives = []
        for hit in result.hits:
            if hit.faq_id in gold:
                continue
            for text in candidate_texts(hit):
                if text not in seen:
                    seen.add(text)
                    negatives.append(text)
        groups.append(Group(result.analysis.text, positives, negatives))
    return groups


def save_groups(groups: list[Group], path: Path) -> None:
    partial = path.with_suffix(".part")
    partial.write_text("".join(json.dumps(g.__dict__, ensure_ascii=False) + "\n" for g in groups), encoding="utf-8")
    partial.rename(path)


def load_groups(path: Path) -> list[Group]:
    return [Group(**json.loads(line)) for line in path.open(encoding="utf-8")]
