"""The knowledge-base doctor: what in the live index makes FAQs steal each other's traffic, or serves nobody.

Four checks over the FAQs behind an alias:
- collisions: FAQ pairs whose questions the shipped cross-encoder calls equivalent. Candidates come
  from Elasticsearch: every question text is searched with es-faq's own hybrid request, its FAQ
  excluded; the cross-encoder then scores the question against each candidate's texts, in batches;
- strays: similar questions the cross-encoder puts closer to another FAQ than to their own standard question;
- unreached: FAQs that no logged search ever returned (a composite aggregation over the query log);
- empty and duplicated answers. `answer` is stored, not indexed (mappings/faq.json), and the
  distribution has no painless for a runtime field, so these are read from the FAQs scanned here.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

import numpy as np
from elasticsearch import Elasticsearch, helpers
from tqdm import tqdm

from ..config.indices import querylog_pattern
from ..config.settings import Settings
from ..engine.client import engine_errors, live_indices
from ..errors import IndexMissing, InvalidInput
from ..search import differ
from ..search.rerank import Reranker, candidate_texts
from ..search.retrieve import RetrievalQuery, execute_sides, search_request
from .querylog import HIT_FAQ_ID, searches
from .report import check_since

SCAN_FIELDS = ["faq_id", "question", "answer", "enabled", "questions.text", "questions.tokens",
               "questions.vector", "questions.is_standard"]
SEARCHES_PER_REQUEST = 20  # one _msearch per this many question texts (es_timeout_s bounds each)
LIST_MAX = 500  # rows kept per list in a report (the counts stay exact)


@dataclass
class KbFaq:
    id: str
    question: str
    answer: str
    enabled: bool
    texts: list[str]
    tokens: list[list[str]]
    vectors: np.ndarray  # one unit vector per text, as indexed


@dataclass(frozen=True)
class Collision:
    faq_a: str
    faq_b: str
    question_a: str
    question_b: str
    logit: float  # the cross-encoder's, for (question_a, question_b)
    probability: float  # sigmoid of the logit: the model's own, uncalibrated
    cosine: float  # of the two questions' indexed vectors
    score: float  # collision_score: what the threshold applies to
    # What the two questions differ in, as the decision says it ("differs in words only one side has: 支付 vs
    # 登录"); set on reported collisions, so that a reader can tell a look-alike from a duplicate at a glance.
    differences: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stray:
    faq_id: str
    question: str
    own_question: str
    own_logit: float
    other_faq: str
    other_question: str
    other_logit: float


@dataclass
class Report:
    alias: str
    index: str
    created: str
    faqs: int
    enabled: int
    probed: int  # FAQs whose questions were searched (all, or a seeded sample)
    threshold: float
    depth: int
    cosine_weight: float
    min_cosine: float
    collisions: list[Collision] = field(default_factory=list)
    strays: list[Stray] = field(default_factory=list)
    candidate_scores: list[float] = field(default_factory=list)  # best score of every candidate FAQ pair
    searches_logged: int = 0
    unreached: list[str] = field(default_factory=list)
    unreached_count: int | None = None  # None: the query log holds no search to judge by
    empty_answers: list[str] = field(default_factory=list)
    empty_answer_count: int = 0
    duplicate_answers: list[dict] = field(default_factory=list)  # {"answer", "faq_ids"}
    notes: list[str] = field(default_factory=list)

    def as_dict(self, scores: bool = False) -> dict:
        out = asdict(self)
        # The counts below stay exact; lists, not tuples, so that the dict equals the report read back as JSON.
        out["collisions"] = [{**c, "differences": list(c["differences"])} for c in out["collisions"][:LIST_MAX]]
        out["strays"] = out["strays"][:LIST_MAX]
        out["collision_count"], out["stray_count"] = len(self.collisions), len(self.strays)
        if not scores:
            out.pop("candidate_scores")
        return out


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def live_index(client: Elasticsearch, alias: str) -> str:
    names = live_indices(client, alias)
    if not names:
        raise IndexMissing(f"alias {alias!r} does not exist; load one with `es-faq index load FILE`")
    return names[0]


def scan_faqs(client: Elasticsearch, index: str, progress: bool = False) -> list[KbFaq]:
    """Every FAQ of an index with its question texts, tokens and indexed vectors."""
    faqs = []
    rows = helpers.scan(client, index=index, query={"query": {"match_all": {}}, "_source": SCAN_FIELDS}, size=500)
    for row in tqdm(rows, desc="read FAQs", unit="faq", disable=not progress):
        src = row["_source"]
        questions = src.get("questions", [])
        faqs.append(KbFaq(src["faq_id"], src.get("question", ""), src.get("answer") or "", src.get("enabled", True),
                          [q["text"] for q in questions], [q.get("tokens", "").split() for q in questions],
                          np.asarray([q["vector"] for q in questions], dtype=np.float32)))
    return sorted(faqs, key=lambda f: f.id)


def _candidates(client: Elasticsearch, settings: Settings, index: str, probes: Sequence[KbFaq], depth: int,
                progress: bool) -> dict[tuple[str, int], list]:
    """For each (FAQ id, question position): the hits of its hybrid search with its own FAQ excluded."""
    work = [(faq, i) for faq in probes for i in range(len(faq.texts)) if faq.enabled]
    out: dict[tuple[str, int], list] = {}
    bar = tqdm(total=len(work), desc="search questions", unit="q", disable=not progress)
    for start in range(0, len(work), SEARCHES_PER_REQUEST):
        chunk = work[start:start + SEARCHES_PER_REQUEST]
        searches = {str(n): search_request("hybrid", RetrievalQuery(
            faq.tokens[i], faq.vectors[i].tolist(), depth, exclude=(faq.id,)), settings)
            for n, (faq, i) in enumerate(chunk)}
        lists = execute_sides(client, settings, index, searches)  # engine errors become EngineUnavailable there
        for n, (faq, i) in enumerate(chunk):
            out[(faq.id, i)] = lists[str(n)]
        bar.update(len(chunk))
    bar.close()
    return out


def _score(reranker: Reranker, pairs: Iterable[tuple[str, str]], settings: Settings,
           progress: bool) -> dict[tuple[str, str], float]:
    """The cross-encoder's logit for each distinct (text, text) pair as ordered, in batches. One order, not the
    mean of both that searches use (rerank_both_orders): on the planted diac collisions the mean found 52 of
    200 at the shipped threshold against 82, and its best F1 on train+dev was 0.60 against 0.61
    (docs/benchmarks.md, "Both orders")."""
    todo = list(dict.fromkeys(pairs))
    batch = max(settings.rerank_batch_size, 1) * 8
    scores: dict[tuple[str, str], float] = {}
    for start in tqdm(range(0, len(todo), batch), desc="cross-encoder", unit="batch", disable=not progress):
        chunk = todo[start:start + batch]
        for pair, logit in zip(chunk, reranker.score_ordered(chunk), strict=True):
            scores[pair] = float(logit)
    return scores


def collision_score(logit: float, cosine: float, cosine_weight: float) -> float:
    """What a pair is judged on: the cross-encoder's logit plus cosine_weight x the vectors' cosine (the
    small cross-encoder misses paraphrases that the embedding sees; bench/doctor_bench.py)."""
    return round(logit + cosine_weight * cosine, 4)


def question_pairs(client: Elasticsearch, settings: Settings, index: str, faqs: Sequence[KbFaq],
                   reranker: Reranker, *, depth: int, sample: int | None = None, seed: int = 0,
                   progress: bool = False) -> tuple[list[Collision], list[Stray], int]:
    """Every candidate question pair of two FAQs, scored; strays; how many FAQs were probed.

    Each probed FAQ's questions are searched (hybrid, their FAQ excluded); question pairs whose
    vectors' cosine is below doctor_min_cosine never reach the cross-encoder."""
    probes = list(faqs)
    if sample is not None and sample < len(probes):
        probes = random.Random(seed).sample(probes, sample)
    by_id = {f.id: f for f in faqs}

    def vector(faq_id: str, text: str) -> np.ndarray:
        faq = by_id[faq_id]
        return faq.vectors[faq.texts.index(text)]

    hits = _candidates(client, settings, index, probes, depth, progress)
    rows = []  # (probe FAQ, its question's position, other FAQ, its question, cosine)
    for (faq_id, i), found in hits.items():
        for hit in found:
            for other in candidate_texts(hit):
                cosine = float(by_id[faq_id].vectors[i] @ vector(hit.faq_id, other))
                if cosine >= settings.doctor_min_cosine:
                    rows.append((faq_id, i, hit.faq_id, other, cosine))
    # A similar question's tie to its own FAQ: scored against the standard question.
    own = [(f.texts[i], f.texts[0]) for f in probes if f.enabled for i in range(1, len(f.texts))]
    logits = _score(reranker, [*((by_id[a].texts[i], other) for a, i, _, other, _ in rows), *own], settings,
                    progress)
    pairs = []
    nearest: dict[tuple[str, int], tuple[float, str, str]] = {}
    for faq_id, i, other_id, other, cosine in rows:
        text = by_id[faq_id].texts[i]
        logit = logits[(text, other)]
        a, b, qa, qb = (faq_id, other_id, text, other) if faq_id < other_id else (other_id, faq_id, other, text)
        pairs.append(Collision(a, b, qa, qb, round(logit, 4), round(_sigmoid(logit), 4), round(cosine, 4),
                               collision_score(logit, cosine, settings.doctor_cosine_weight)))
        if i > 0 and ((faq_id, i) not in nearest or logit > nearest[(faq_id, i)][0]):
            nearest[(faq_id, i)] = (logit, other_id, other)
    strays = []
    for (faq_id, i), (logit, other_id, other) in nearest.items():
        faq = by_id[faq_id]
        own_logit = logits[(faq.texts[i], faq.texts[0])]
        if logit > own_logit:
            strays.append(Stray(faq_id, faq.texts[i], faq.texts[0], round(own_logit, 4), other_id, other,
                                round(logit, 4)))
    strays.sort(key=lambda s: (s.own_logit - s.other_logit, s.faq_id))
    return pairs, strays, len(probes)


def collisions(pairs: Iterable[Collision], cosine_weight: float, threshold: float) -> tuple[list[Collision],
                                                                                          list[float]]:
    """The best question pair of each FAQ pair under this weight: those at or above threshold, and every
    FAQ pair's best score."""
    best: dict[tuple[str, str], Collision] = {}
    for pair in pairs:
        pair = replace(pair, score=collision_score(pair.logit, pair.cosine, cosine_weight))
        key = (pair.faq_a, pair.faq_b)
        if key not in best or pair.score > best[key].score:
            best[key] = pair
    found = sorted((c for c in best.values() if c.score >= threshold), key=lambda c: (-c.score, c.faq_a, c.faq_b))
    return found, [c.score for c in best.values()]


def reached_faqs(client: Elasticsearch, settings: Settings, since: str | None = None) -> tuple[set[str], int]:
    """FAQ ids that any logged search returned (composite aggregation, paged), and how many searches there were."""
    index = querylog_pattern(settings.query_log_prefix)
    query = searches(since)
    reached: set[str] = set()
    after = None
    logged = 0
    while True:
        composite: dict = {"size": 1000, "sources": [{"faq": {"terms": {"field": HIT_FAQ_ID}}}]}
        if after:
            composite["after"] = after
        with engine_errors(settings):
            body = client.search(index=index, size=0, track_total_hits=True, allow_no_indices=True,
                                 ignore_unavailable=True, query=query, aggs={"faqs": {"composite": composite}}).body
        logged = body["hits"]["total"]["value"]
        agg = (body.get("aggregations") or {}).get("faqs")
        if not agg or not agg["buckets"]:
            return reached, logged
        reached.update(b["key"]["faq"] for b in agg["buckets"])
        after = agg.get("after_key")
        if not after:
            return reached, logged


def answer_problems(faqs: Sequence[KbFaq]) -> tuple[list[str], list[dict]]:
    """Enabled FAQs with an empty answer, and groups of FAQs sharing one (whitespace-folded) answer."""
    empty = [f.id for f in faqs if f.enabled and not f.answer.strip()]
    groups: dict[str, list[str]] = defaultdict(list)
    for f in faqs:
        if f.enabled and f.answer.strip():
            groups[" ".join(f.answer.split())].append(f.id)
    dupes = [{"answer": text, "faq_ids": ids} for text, ids in groups.items() if len(ids) > 1]
    return empty, sorted(dupes, key=lambda d: (-len(d["faq_ids"]), d["faq_ids"][0]))


def check_options(depth: int | None, sample: int | None, since: str | None) -> None:
    """InvalidInput for the options `run` refuses (the API checks them before it starts a job)."""
    if depth is not None and not 1 <= depth <= 50:
        raise InvalidInput("depth must be from 1 to 50")
    if sample is not None and sample < 1:
        raise InvalidInput("sample must be at least 1 FAQ")
    if since is not None:
        check_since(since)


def run(client: Elasticsearch, settings: Settings, reranker: Reranker, *, alias: str | None = None,
        depth: int | None = None, threshold: float | None = None, sample: int | None = None, seed: int = 0,
        since: str | None = None, progress: bool = False) -> Report:
    """Every check over the FAQs behind `alias` (default index_alias)."""
    alias = alias or settings.index_alias
    depth = settings.doctor_depth if depth is None else depth
    threshold = settings.doctor_threshold if threshold is None else threshold
    check_options(depth, sample, since)
    with engine_errors(settings):
        index = live_index(client, alias)
        faqs = scan_faqs(client, index, progress)
    report = Report(alias, index, datetime.now(timezone.utc).isoformat(timespec="seconds"), len(faqs),
                    sum(f.enabled for f in faqs), 0, threshold, depth, settings.doctor_cosine_weight,
                    settings.doctor_min_cosine)
    pairs, report.strays, report.probed = question_pairs(client, settings, index, faqs, reranker, depth=depth,
                                                         sample=sample, seed=seed, progress=progress)
    report.collisions, report.candidate_scores = collisions(pairs, settings.doctor_cosine_weight, threshold)
    report.collisions = [replace(c, differences=tuple(differ.explain(c.question_a, c.question_b)))
                         for c in report.collisions]
    if report.probed < report.faqs:
        report.notes.append(f"collisions and strays: the questions of a seeded sample of {report.probed} of "
                            f"{report.faqs} FAQs (seed {seed}) were searched against the whole index")
    reached, report.searches_logged = reached_faqs(client, settings, since)
    if report.searches_logged:
        unreached = [f.id for f in faqs if f.enabled and f.id not in reached]
        report.unreached, report.unreached_count = unreached[:LIST_MAX], len(unreached)
    else:
        report.notes.append(f"the query log ({querylog_pattern(settings.query_log_prefix)}) holds no search"
                            + (f" in the last {since}" if since else "") + ": unreached FAQs not judged")
    empty, report.duplicate_answers = answer_problems(faqs)
    report.empty_answers, report.empty_answer_count = empty[:LIST_MAX], len(empty)
    report.duplicate_answers = report.duplicate_answers[:LIST_MAX]
    return report
