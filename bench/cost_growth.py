"""How cost grows with the knowledge base: build 10k, 100k, 1M FAQs and measure index time, disk,
heap, hybrid latency and kNN recall@10 against an exact search (docs/benchmarks.md, "Cost growth to 10M FAQs").

    ES_FAQ_ES_URL=http://127.0.0.1:9224 bench/cost_growth.py --sizes 10000,100000,1000000 \
        --out bench/results/cost_growth.json [--shards 2] [--force-merge]

Documents have the real shape (es_faq/kb/index.py faq_documents, mappings/faq.json): the questions are
the real ones of faq-bench (diac, bq, atec), then variations of them (a polite prefix or a final
particle), tokenised by the real analyzer. Vectors: a sample of real questions is embedded by the
real model; a FAQ whose question is in the sample gets its real vector, every other one a blend of
three real vectors plus noise, normalised: so the 1M build costs no per-document embedding.
Queries are real bench queries, analysed and embedded by the real stages; the hybrid request is
es-faq's own (retrieve.search_request). Each size gets its own index, deleted afterwards."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from es_faq.config.load import load_settings  # noqa: E402
from es_faq.engine.client import make_client  # noqa: E402
from es_faq.kb.index import faq_body  # noqa: E402
from es_faq.search.analyze import Analyzer  # noqa: E402
from es_faq.search.embed import Embedder  # noqa: E402
from es_faq.search.retrieve import RetrievalQuery, search_request  # noqa: E402

BENCHES = ("diac", "bq", "atec")
PREFIXES = ("请问", "我想问一下", "你好，", "麻烦问下")
SUFFIXES = ("吗", "呢", "怎么办", "啊", "？")
# Vectors go into the bulk body with 4 decimals, formatted from a table: float repr costs about 1 s
# per 1000 FAQs, which would have been the 1M build's bottleneck.
SCALE = 10000
NUMBERS = np.array([f"{v / SCALE:.4f}".rstrip("0").rstrip(".") for v in range(-SCALE, SCALE + 1)], dtype=object)
ANSWER = "您好，这个问题可以在 App 的“我的 - 帮助中心”里按提示操作；如仍无法解决，请联系在线客服，我们会尽快为您处理。"


def real_questions(bench_dir: Path) -> list[tuple[str, str]]:
    rows = []
    for bench in BENCHES:
        with (bench_dir / bench / "faqs.jsonl").open(encoding="utf-8") as fh:
            rows += [(r["id"], r["question"]) for r in map(json.loads, fh)]
    return rows


def real_queries(bench_dir: Path, n: int, rng: random.Random) -> list[str]:
    queries = []
    for bench in BENCHES:
        with (bench_dir / bench / "queries.jsonl").open(encoding="utf-8") as fh:
            queries += [json.loads(line)["query"] for line in fh]
    return rng.sample(queries, n)


class Corpus:
    """Documents of the real shape, generated in order: FAQ i is real question i % R, varied for i >= R."""

    def __init__(self, questions, analyzer: Analyzer, embedder: Embedder, sample: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.questions = questions
        started = time.monotonic()
        self.tokens = [analyzer.analyze(q).tokens for _, q in questions]
        self.affix_tokens = {a: analyzer.analyze(a).tokens for a in PREFIXES + SUFFIXES}
        self.analyze_s = time.monotonic() - started
        picked = self.rng.choice(len(questions), size=min(sample, len(questions)), replace=False)
        started = time.monotonic()
        self.sample_vectors = embedder.encode([questions[i][1] for i in picked])
        self.embed_s = time.monotonic() - started
        self.real_row = {int(i): row for row, i in enumerate(picked)}

    def _vectors(self, ids: np.ndarray, primary: int) -> np.ndarray:
        """Vectors for FAQ ids; the first `primary` rows are standard questions (real vector if sampled)."""
        n = len(ids)
        picks = self.rng.integers(0, len(self.sample_vectors), size=(n, 3))
        weights = self.rng.dirichlet((1.0, 1.0, 1.0), size=n).astype(np.float32)
        out = np.einsum("nk,nkd->nd", weights, self.sample_vectors[picks])
        out += self.rng.normal(0, 0.01, size=out.shape).astype(np.float32)
        for row, i in enumerate(ids[:primary]):
            real = self.real_row.get(int(i))
            if real is not None:
                out[row] = self.sample_vectors[real]
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return np.rint(out * SCALE).astype(np.int32)  # 4 decimals, as stored: the exact search sees these

    def _question(self, i: int, position: int) -> tuple[str, list[str]]:
        base = i % len(self.questions)
        text, tokens = self.questions[base][1], self.tokens[base]
        copy = i // len(self.questions) + position
        if copy:
            prefix, suffix = PREFIXES[copy % len(PREFIXES)], SUFFIXES[(copy // len(PREFIXES)) % len(SUFFIXES)]
            text = prefix + text + suffix
            tokens = self.affix_tokens[prefix] + tokens + self.affix_tokens[suffix]
        return text, tokens

    def ndjson(self, start: int, end: int, index: str) -> tuple[str, int, np.ndarray, np.ndarray]:
        """The bulk body of FAQs start..end-1 (one in five has a similar question, as real KBs do), its
        question count, and each question's vector (as stored) with the FAQ number it belongs to."""
        ids = np.arange(start, end)
        similar = [int(i) for i in ids if i % 5 == 0]
        vectors = self._vectors(np.concatenate([ids, np.array(similar, dtype=ids.dtype)]), len(ids))
        owners = np.concatenate([ids, np.array(similar, dtype=ids.dtype)])
        extra_row = {i: len(ids) + k for k, i in enumerate(similar)}
        lines = []
        for row, i in enumerate(ids.tolist()):
            texts = [self._question(i, 0)] + ([self._question(i, 1)] if i in extra_row else [])
            rows = [row] + ([extra_row[i]] if i in extra_row else [])
            faq_id = f"cost-{i:08d}"
            doc = {"faq_id": faq_id, "question": texts[0][0], "answer": ANSWER, "category": BENCHES[i % 3],
                   "enabled": True, "updated_at": "2026-12-01T00:00:00Z", "content_hash": f"{i:032x}",
                   "questions": [{"text": t, "is_standard": p == 0, "tokens": " ".join(tok), "vector": f"@{r}@"}
                                 for p, ((t, tok), r) in enumerate(zip(texts, rows, strict=True))]}
            line = json.dumps(doc, ensure_ascii=False)
            for r in rows:
                line = line.replace(f'"@{r}@"', "[" + ",".join(NUMBERS[vectors[r] + SCALE]) + "]")
            lines.append(json.dumps({"index": {"_index": index, "_id": faq_id}}))
            lines.append(line)
        return "\n".join(lines) + "\n", len(owners), vectors.astype(np.float32) / SCALE, owners


class ExactTop:
    """The exact top k FAQs of each query by dot product (max over a FAQ's questions), kept while
    the documents are generated: the local distribution has no painless for a script_score."""

    def __init__(self, queries: np.ndarray, k: int = 10):
        self.queries, self.k = queries, k
        self.scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        self.owners = np.zeros((len(queries), 0), dtype=np.int64)

    def add(self, vectors: np.ndarray, owners: np.ndarray) -> None:
        scores = self.queries @ vectors.T  # (q, n)
        # A FAQ with two questions appears twice: keep its best; top k over candidates of k per chunk + kept.
        order = np.argsort(-scores, axis=1)[:, : 2 * self.k]
        cand_scores = np.take_along_axis(scores, order, axis=1)
        cand_owners = owners[order]
        all_scores = np.concatenate([self.scores, cand_scores], axis=1)
        all_owners = np.concatenate([self.owners, cand_owners], axis=1)
        best_scores, best_owners = [], []
        for s_row, o_row in zip(all_scores, all_owners, strict=True):
            seen: dict[int, float] = {}
            for score, owner in sorted(zip(s_row.tolist(), o_row.tolist(), strict=True), reverse=True):
                if owner not in seen:
                    seen[owner] = score
                if len(seen) == self.k:
                    break
            best_owners.append(list(seen) + [-1] * (self.k - len(seen)))
            best_scores.append(list(seen.values()) + [-np.inf] * (self.k - len(seen)))
        self.scores = np.array(best_scores, dtype=np.float32)
        self.owners = np.array(best_owners, dtype=np.int64)

    def faq_ids(self) -> list[list[str]]:
        return [[f"cost-{o:08d}" for o in row if o >= 0] for row in self.owners.tolist()]


def build(client, settings, corpus: Corpus, size: int, index: str, dims: int, chunk: int,
          exact: ExactTop) -> dict:
    client.options(ignore_status=404).indices.delete(index=index)
    client.indices.create(index=index, **faq_body(settings, dims, {"bench": "cost_growth"}))
    started = time.monotonic()
    questions = 0
    bulk = client.options(request_timeout=600)

    def send(body: str) -> None:
        response = bulk.bulk(operations=body, filter_path="errors,items.*.error")
        if response.get("errors"):
            raise SystemExit(f"bulk errors: {json.dumps(response.body)[:500]}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = []
        for start in range(0, size, chunk):
            body, q, vectors, owners = corpus.ndjson(start, min(size, start + chunk), index)
            questions += q
            exact.add(vectors, owners)
            pending.append(pool.submit(send, body))
            if len(pending) >= 4:
                pending.pop(0).result()
        for future in pending:
            future.result()
    loaded = time.monotonic() - started
    client.indices.put_settings(index=index, settings={"index": {"refresh_interval": "1s"}})
    client.options(request_timeout=600).indices.refresh(index=index)
    refreshed = time.monotonic() - started
    stats = client.indices.stats(index=index, metric="store,segments,docs,dense_vector").body
    total = stats["indices"][index]["primaries"]
    return {"faqs": size, "questions": questions, "load_s": round(loaded, 1), "index_s": round(refreshed, 1),
            "faqs_per_s": round(size / refreshed), "store_bytes": total["store"]["size_in_bytes"],
            "store_bytes_per_faq": round(total["store"]["size_in_bytes"] / size),
            "segments": total["segments"]["count"], "dense_vector": total.get("dense_vector"),
            "lucene_docs": total["docs"]["count"]}


def heap(client) -> dict:
    nodes = client.nodes.stats(metric="jvm,indices", index_metric="segments").body["nodes"]
    return {n["name"]: {"heap_used_bytes": n["jvm"]["mem"]["heap_used_in_bytes"],
                        "heap_max_bytes": n["jvm"]["mem"]["heap_max_in_bytes"],
                        "segments_memory_bytes": n["indices"]["segments"].get("memory_in_bytes")}
            for n in nodes.values()}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _rescored(body: dict, oversample: float | None) -> dict:
    """The body with the kNN's int8 candidates rescored on the float vectors (`oversample` x k)."""
    if oversample:
        body["knn"]["rescore_vector"] = {"oversample": oversample}
    return body


def measure(client, settings, index: str, queries: list, exact: list[list[str]], candidates: list[int],
            latency_queries: int, oversamples: list[float]) -> list[dict]:
    """Recall@10 and hybrid latency for each num_candidates until recall >= 0.95, then for each
    rescore oversample at the default num_candidates (a query option es-faq does not send today)."""
    rows: list[dict] = []
    trials = [(nc, None) for nc in candidates] + [(settings.knn_num_candidates, o) for o in oversamples]
    for nc, oversample in trials:
        if oversample is None and rows and rows[-1]["recall_at_10"] >= 0.95 and len(rows) > 1:
            continue
        s = settings.replace(knn_num_candidates=nc)
        recalls = []
        for (tokens, vector), truth in zip(queries, exact, strict=True):
            body = _rescored(search_request("vector", RetrievalQuery(tokens, vector, 10, matches=False),
                                            s).to_dict(), oversample)
            got = [h["_source"]["faq_id"] for h in client.search(index=index, **body)["hits"]["hits"]]
            recalls.append(len(set(got) & set(truth)) / max(1, len(truth)))
        bodies = [_rescored(search_request("hybrid", RetrievalQuery(t, v, settings.search_k), s).to_dict(), oversample)
                  for t, v in queries]
        for body in bodies[:20]:  # warm-up
            client.search(index=index, **body)
        ms, took = [], []
        for i in range(latency_queries):
            started = time.perf_counter()
            took.append(client.search(index=index, **bodies[i % len(bodies)])["took"])
            ms.append((time.perf_counter() - started) * 1000)
        rows.append({"num_candidates": nc, "rescore_oversample": oversample,
                     "recall_at_10": round(statistics.mean(recalls), 4),
                     "hybrid_p50_ms": pct(ms, 0.5), "hybrid_p99_ms": pct(ms, 0.99),
                     "hybrid_took_p50_ms": pct(took, 0.5), "hybrid_took_p99_ms": pct(took, 0.99),
                     "searches": latency_queries})
        print(json.dumps({"index": index, **rows[-1]}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--sample", type=int, default=4000, help="real questions embedded by the model")
    parser.add_argument("--queries", type=int, default=100, help="real queries for recall (exact search each)")
    parser.add_argument("--latency-queries", type=int, default=300, help="timed hybrid searches per setting")
    parser.add_argument("--candidates", default="200,400,800,1600,3200", help="num_candidates tried, in order")
    parser.add_argument("--oversample", default="2,3", help="rescore_vector oversample factors tried")
    parser.add_argument("--chunk", type=int, default=1000, help="FAQs per bulk request")
    parser.add_argument("--keep", action="store_true", help="keep the indices")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cost_growth.json")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--shards", type=int, help="primary shards of each index (default: index_shards)")
    parser.add_argument("--force-merge", action="store_true",
                        help="after measuring, merge each index to one segment and measure again")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    settings = load_settings()
    if args.shards:
        settings = settings.replace(index_shards=args.shards)
    client = make_client(settings, timeout_s=120)
    analyzer, embedder = Analyzer(settings), Embedder(settings)
    rng = random.Random(args.seed)
    corpus = Corpus(real_questions(settings.bench_dir), analyzer, embedder, args.sample, args.seed)
    texts = real_queries(settings.bench_dir, args.queries, rng)
    queries = [(analyzer.analyze(q).tokens, embedder.encode([analyzer.analyze(q).text], is_query=True)[0].tolist())
               for q in texts]
    candidates = [int(c) for c in args.candidates.split(",")]
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["setup"] = {"sample_embedded": len(corpus.sample_vectors), "real_questions": len(corpus.questions),
                        "analyze_s": round(corpus.analyze_s, 1), "embed_sample_s": round(corpus.embed_s, 1),
                        "shards": settings.index_shards, "es_url": settings.es_url, "queries": len(queries),
                        "default_num_candidates": settings.knn_num_candidates, "knn_k": settings.knn_k}
    for size in [int(s) for s in args.sizes.split(",")]:
        index = f"bench-cost-{size}"
        before = heap(client)
        exact = ExactTop(np.array([v for _, v in queries], dtype=np.float32))
        row = build(client, settings, corpus, size, index, embedder.dims, args.chunk, exact)
        print(json.dumps(row), flush=True)
        oversamples = [float(o) for o in args.oversample.split(",") if o]
        row["settings"] = measure(client, settings, index, queries, exact.faq_ids(), candidates,
                                  args.latency_queries, oversamples)
        if args.force_merge:
            # The same build merged to one segment, as `index_force_merge` does before the alias swap.
            started = time.monotonic()
            client.options(request_timeout=3600).indices.forcemerge(index=index, max_num_segments=1)
            row["merge_s"] = round(time.monotonic() - started, 1)
            row["segments_merged"] = client.indices.stats(index=index, metric="segments").body[
                "indices"][index]["primaries"]["segments"]["count"]
            print(json.dumps({"index": index, "merge_s": row["merge_s"], "segments": row["segments_merged"]}),
                  flush=True)
            row["settings_merged"] = measure(client, settings, index, queries, exact.faq_ids(), candidates,
                                             args.latency_queries, oversamples)
        row["heap_before"], row["heap_after"] = before, heap(client)
        row["shards"] = settings.index_shards
        row["load_average_at_start"] = load_at_start
        results[str(size) if settings.index_shards == 1 else f"{size}-shards{settings.index_shards}"] = row
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        if not args.keep:
            client.indices.delete(index=index)
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
