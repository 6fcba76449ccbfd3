"""All settings in one object: every knob with its measured default, the names a setting may take, and
the checks every Settings passes when it is made. load.py builds one from the file and ES_FAQ_* variables."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import ConfigError
from .indices import PREVIEW_INDEX_PATTERN, querylog_pattern
from .urls import check_es_url, mask_url, split_urls

# Shown as *** by `es-faq config`, never logged; URLs are shown with mask_url.
SECRETS = ("es_api_key", "es_password", "admin_token")
ADMIN_TOKEN_MIN_CHARS = 16
MAX_RETENTION_DAYS = 36500  # a longer one reaches before year 1 (OverflowError): 0 keeps every day
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # es_faq/
REPO_ROOT = PACKAGE_DIR.parent  # the checkout (or, installed from a wheel, site-packages)
# mappings/, analyzers/ and onnx_models/: at the top of a checkout, inside the package in a wheel (setup.py).
DATA_ROOT = REPO_ROOT if (REPO_ROOT / "setup.cfg").is_file() and (REPO_ROOT / "mappings").is_dir() else PACKAGE_DIR
# The names a mode or fusion setting may take, defined here once: the stages, the CLI and the API import them.
RETRIEVAL_MODES = ("bm25", "vector", "hybrid")  # one Elasticsearch request each (es_faq/search/retrieve.py)
SEARCH_MODES = (*RETRIEVAL_MODES, "rerank")  # rerank: hybrid, then the cross-encoder (es_faq/search/rerank.py)
FUSIONS = ("sum", "rrf", "weighted")  # how hybrid merges its two sides (es_faq/search/fuse.py)
# The kinds of difference between a query and an FAQ question (es_faq/search/differ.py).
DIFFERENCE_KINDS = ("number", "negation", "antonym", "temporal", "order", "words")
PARTIAL_RESULTS = ("serve", "refuse")  # search_partial: what to do with a still-partial result


def one_of(names: Iterable[str]) -> str:
    """`a, b or c`, for messages."""
    *rest, last = names
    return ", ".join(rest) + " or " + last


def _default_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "es-faq"


@dataclass(frozen=True)
class Settings:
    """Every knob of es-faq; `ES_FAQ_<NAME>` overrides `<name>` (see docs/configuration.md)."""

    # Elasticsearch connection (a local engine or any cluster of the user's).
    es_url: str = "http://127.0.0.1:9200"
    es_api_key: str = field(default="", repr=False)
    es_username: str = ""
    es_password: str = field(default="", repr=False)
    es_ca_certs: str = ""
    es_timeout_s: float = 10.0
    # Ask the nodes for the cluster's other nodes (at start, and when a node fails), so that one seed
    # URL is enough. Off: behind a proxy or a cloud endpoint the nodes publish addresses the client
    # cannot use (elasticsearch-py's docs); list every node in es_url instead.
    es_sniff: bool = False
    # The API's searches and FAQ reads: a hung node must give a 503 in seconds, not hold a serving
    # thread for es_timeout_s; writers keep es_timeout_s. 1 s failed every search of a node that was
    # live but starved on the 2-core test machine; the breaker below makes most 503s immediate
    # anyway (docs/reliability.md).
    search_timeout_s: float = 2.0
    # After this many requests in a row get no answer (timeout, 429, 5xx), or at once when the
    # connection is refused, stop asking the node for engine_breaker_open_s, then probe its health
    # once before any model work: a hung or drowning node is not buried under every client's retries
    # (docs/reliability.md). 0: never stop asking.
    engine_breaker_failures: int = 3
    engine_breaker_open_s: float = 2.0
    # When the breaker half-opens, the probe (a cheap search) waits this long at most; unset, as long
    # as a search (search_timeout_s): a shorter probe failed on a node slower than it but well within
    # the search timeout, and the breaker reopened for good (issue 22).
    engine_probe_timeout_s: float | None = None
    # A search some of whose shards failed (`_shards.failed`, a node that left mid-search) is sent
    # once more; if shards still fail, "serve" answers with what the others found, marked
    # `partial: true` (and logged, and counted), "refuse" answers 503 engine_unavailable.
    search_partial: str = "serve"
    index_alias: str = "faq"
    index_shards: int = 1
    index_replicas: int = 0
    index_keep_versions: int = 2
    # Merge each new version to one segment before the alias moves to it (`index load --force-merge`):
    # fewer segments to search, for a longer build. Off until measured (docs/benchmarks.md).
    index_force_merge: bool = False
    # Lease of an alias's writer lock (es_faq/kb/lock.py: index load and rollback, every sync, the
    # admin reindex), renewed every third of it; a writer that cannot renew for this long loses it.
    writer_lock_ttl_s: float = 30.0

    # Local engine provisioned by `es-faq engine up`.
    home: Path = field(default_factory=_default_home)
    engine_dir: Path | None = None
    engine_version: str = "9.2.8"
    engine_sha256: str = ""
    engine_java_home: Path | None = None  # default: the newest full JDK 21+ under /usr/lib/jvm
    engine_heap: str = "1g"
    engine_user: str = "esfaq"
    engine_start_timeout_s: float = 180.0
    maven_url: str = "https://repo.maven.apache.org/maven2"

    # Models.
    model_dir: Path | None = None
    # embedder-zh-d: bge-small-zh-v1.5 fine-tuned here on question pairs (docs/training.md, embedder-zh), in
    # dynamic INT8 run one text at a time, so a text's vector depends on the text alone and the vector cache can
    # hand out vectors. Changing it re-embeds the knowledge base once (`es-faq index load`).
    embed_model: str = "embedder-zh-d"
    embed_batch_size: int = 32
    # Vectors of indexed texts, kept for the next build and sync (es_faq/kb/vectors.py).
    vector_cache_enabled: bool = True
    vector_cache_index: str = "es-faq-vectors"
    embed_max_tokens: int = 64
    # Threads of each ONNX session; 0: onnxruntime decides (every core). `es-faq serve` sets
    # cores / workers for its workers (gunicorn_conf.py): sessions in several processes must not
    # each claim every core.
    onnx_threads: int = 0
    # Spinning threads wait for work busily: faster for one process alone, CPU burnt for nothing when
    # processes (gunicorn workers, the engine) share the cores (docs/benchmarks.md, "Serving throughput over HTTP").
    onnx_spinning: bool = False
    # The cross-encoder (es_faq/search/rerank.py); trained by `es-faq train reranker` (docs/training.md).
    rerank_model: str = "reranker-zh"
    rerank_depth: int = 20  # fused candidates the cross-encoder reorders
    # The rerank score is the cross-encoder's logit + this x the retrieval (fused) score.
    rerank_retrieval_weight: float = 10.0  # bq dev sweep, bench/sweep_rerank.py
    # Pairs per ONNX run, sorted by length so each run pads little: 8 scored 20 diac candidates in
    # 105 ms against 174 ms for one run of all (docs/benchmarks.md, "The cross-encoder: fewer, better-packed pairs").
    rerank_batch_size: int = 8
    rerank_max_tokens: int = 80  # query + question; 95% of corpus pairs and diac pairs fit (docs/training.md)
    # Question texts a candidate is scored on (standard, then the matched ones); 0: all (up to 3).
    rerank_texts: int = 0
    # Score each pair in both orders, (query, text) and (text, query), and average the two logits: twice
    # the pairs, and the decision's diac test coverage 0.546 -> 0.627 (docs/benchmarks.md, "Both orders").
    rerank_both_orders: bool = True
    # With rerank_both_orders, the decision reads the leader's pairs in one order, (query, question), and reads
    # the reverse as well only when P(right) from that one order lies within this of the answer or the suggest
    # threshold; further away, one order decides as both would have. With the fourth cross-encoder (2026-12-05)
    # 0.05 answers 0.6558 of diac test against 0.6564 reading both always, false answers no higher, and reads the
    # reverse for 29% of atec-10k queries (52% at 0.10, the default before). 1: always both orders. Calibration
    # (`es-faq calibrate`) always reads both (docs/benchmarks.md, "Reading the reverse order only near a
    # threshold", "A narrower order band" and "Serving with the fourth cross-encoder").
    decide_order_band: float = 0.05
    # Where `models pull` finds the faq-bench directory a trained model's recipe names.
    bench_dir: Path = REPO_ROOT.parent / "shared" / "data" / "faq-bench"
    # Labelled question pairs (text1<TAB>text2<TAB>label) the cross-encoder trains and is evaluated on.
    pairs_dir: Path = REPO_ROOT.parent / "shared" / "data" / "pairs"

    # Search. Defaults measured on the dev splits: docs/benchmarks.md.
    search_k: int = 10
    # bm25, vector, hybrid or rerank (hybrid, then the cross-encoder). hybrid: the reranker trained
    # here on CPU did not beat it on bq dev (docs/benchmarks.md), so reranking is opt-in.
    search_mode: str = "hybrid"
    # The decision (es_faq/search/decide.py): the cross-encoder scores the top decide_depth candidates and
    # a calibrated model turns the leader's logit with the retrieval and vector margins into P(right);
    # `answer` at or above answer_threshold, `suggest` at or above suggest_threshold, else
    # `no_match`. Unset thresholds come from onnx_models/<rerank_model>/decision.json (`es-faq
    # calibrate --write`, diac dev). 1: with each pair scored in both orders (rerank_both_orders) the
    # leader's logit alone covered 0.626 of diac test paraphrases against 0.627 with the top 3 scored, for a
    # third of the pairs (docs/benchmarks.md, "Both orders"). 0 turns the cross-encoder off: every search
    # then only suggests.
    decide_depth: int = 1
    # Kinds of difference (comma-separated; es_faq/search/differ.py) between the query and the leading FAQ's
    # closest question that stop an answer whatever P(right) says: the search suggests instead and says
    # why. "negation,antonym" catches questions turned into their opposite ("怎么关闭自动还款" / "怎么设置
    # 自动还款"): on diac test it stopped 8 near-miss answers and 26 right ones (docs/benchmarks.md, "The
    # decision"), so it is off by default (empty).
    answer_veto: str = ""
    answer_threshold: float | None = None
    suggest_threshold: float | None = None
    search_max_k: int = 100
    # fusion "sum": one _search, the engine adds lexical_boost x BM25 + vector_boost x (1+cos)/2.
    # "rrf" / "weighted": one _msearch, both lists fused here with lexical_weight (vector: 1 - it).
    fusion: str = "sum"
    # 0.002: the best R@1 on dev (diac test 0.962 against 0.945 at 0.01). Until the cross-encoder read
    # both orders, 0.01 was kept because the decision answered more there (0.536 against 0.490); with
    # both orders it answers as many at either (diac test coverage 0.629 against 0.626; docs/benchmarks.md,
    # "Both orders" and "Recall today").
    lexical_boost: float = 0.002
    vector_boost: float = 1.0
    lexical_weight: float = 0.3
    rrf_k: int = 60
    knn_k: int = 50
    knn_num_candidates: int = 200
    # Gather oversample x k candidates on the int8 vectors and rescore them on the float ones
    # (the knn section's rescore_vector, 1 to 10); 0: off, and the request body carries nothing.
    # Off by default: on a 10k-FAQ index 2 cost about 10 ms of CPU a search (8 connections: 57 against 78
    # req/s) and moved recall by a query or two; past 100k FAQs set 2 (1M: kNN recall@10 0.917 -> 0.993,
    # p99 240 -> 150 ms) and recalibrate (docs/benchmarks.md, "Rescoring measured, trees for the decision").
    knn_rescore_oversample: float = 0.0
    query_max_chars: int = 10000
    analyze_max_chars: int = 256

    # Analysis dictionaries (es_faq/search/dictionary.py).
    dict_index: str = "es-faq-dict"
    # Typo, homophone and pinyin correction of queries against the knowledge base's own words
    # (es_faq/search/correct.py); the vocabulary of each index version is kept in vocab_index.
    typo_correction: bool = True
    vocab_index: str = "es-faq-vocab"
    dict_check_interval_s: float = 5.0
    synonym_boost: float = 0.5

    # The knowledge-base doctor (es_faq/kb/doctor.py): candidates per question text searched; question
    # pairs whose vectors' cosine is below doctor_min_cosine are not sent to the cross-encoder; two
    # questions collide when logit + doctor_cosine_weight x cosine >= doctor_threshold. Chosen on the
    # train+dev FAQs of planted diac collisions, diac's unplanted duplicates judged (bench/doctor_bench.py
    # --judgements, docs/benchmarks.md "The doctor"); the threshold re-chosen for the weight with each shipped
    # cross-encoder (stage 4's logits are softer than stage 3's: 4.7, was 5.3); 5.9 gives a short list (was 7.1).
    doctor_depth: int = 5
    doctor_min_cosine: float = 0.75
    doctor_cosine_weight: float = 5.0
    doctor_threshold: float = 4.7

    # HTTP API.
    api_max_body_bytes: int = 64 * 1024
    # 503 answers tell clients to come back after this many seconds (Retry-After).
    api_retry_after_s: int = 5
    # /readyz must answer before a load balancer's probe gives up; a hung node fails the check.
    api_ready_timeout_s: float = 2.0
    # Bearer token of /v1/admin (docs/api.md, "Admin"); empty: the admin endpoints answer 404.
    admin_token: str = field(default="", repr=False)
    # Admin previews and doctor runs, run as background jobs: their records and the one-at-a-time lease
    # (es_faq/api/jobs.py).
    jobs_index: str = "es-faq-jobs"

    # Query log (docs/api.md, "Query log"): every search and its feedback, in daily indices
    # <query_log_prefix>-YYYY.MM.DD, written off the request path by a background thread.
    query_log_enabled: bool = True
    query_log_prefix: str = "es-faq-querylog"
    # Past this many queued documents new ones are dropped (and counted): never block a search.
    query_log_queue_size: int = 10000
    query_log_batch_size: int = 500
    query_log_flush_s: float = 1.0
    # Daily indices whose day is this many days or more before today (UTC) are deleted by the
    # writer (at start, then daily) or `es-faq querylog prune`: the local distribution has no ILM.
    # 0: keep every day.
    query_log_retention_days: int = 90

    # MySQL sync (docs/sync.md): the source database and how its tables and columns are named.
    mysql_url: str = ""  # mysql://user:password@host:3306/database
    mysql_faq_table: str = "faq"
    mysql_id_column: str = "id"
    mysql_question_column: str = "question"
    mysql_answer_column: str = "answer"
    mysql_category_column: str = "category"  # empty: no categories
    mysql_enabled_column: str = "enabled"  # empty: every row is enabled
    mysql_deleted_column: str = "deleted"  # empty: rows are only ever hard-deleted
    mysql_updated_at_column: str = "updated_at"
    mysql_similar_table: str = "faq_similar_question"  # empty: no similar questions
    mysql_similar_faq_id_column: str = "faq_id"
    mysql_similar_question_column: str = "question"
    mysql_similar_order_column: str = "id"
    mysql_batch_size: int = 500
    mysql_connect_timeout_s: float = 10.0
    # Longer rows are skipped and reported: a question is a sentence (and must stay under
    # Lucene's 32766-byte keyword limit); an answer this long is a page, not an answer.
    mysql_max_question_chars: int = 1000
    mysql_max_answer_chars: int = 100_000
    # Incremental runs re-read rows this far behind the watermark, so a transaction that
    # committed late with an older updated_at is still picked up; unchanged rows cost no write.
    mysql_overlap_s: float = 60.0
    mysql_follow_interval_s: float = 2.0
    mysql_retry_max_s: float = 60.0

    @property
    def es_urls(self) -> list[str]:
        """The nodes of es_url, which may list several, comma-separated: the client spreads requests
        over them and retries on another when one fails."""
        return split_urls(self.es_url)

    @property
    def probe_timeout_s(self) -> float:
        """The half-open probe's timeout: engine_probe_timeout_s, or unset, search_timeout_s."""
        return self.search_timeout_s if self.engine_probe_timeout_s is None else self.engine_probe_timeout_s

    @property
    def veto_kinds(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.answer_veto.split(",") if k.strip())

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.home / "models"

    @property
    def engine_path(self) -> Path:
        if self.engine_dir:
            return self.engine_dir
        # Elasticsearch runs as an unprivileged user, who cannot enter root's home.
        if os.geteuid() == 0:
            return Path("/var/lib/es-faq/engine")
        return self.home / "engine"

    def __post_init__(self):
        check_es_url(self.es_url)
        clash = self.reserved(self.index_alias)
        if clash:
            raise ConfigError(f"index_alias={self.index_alias[:80]!r} is one of es-faq's own indices, {clash}: "
                              "choose another alias")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion={self.fusion!r}: choose {one_of(FUSIONS)}")
        if not 0.0 <= self.lexical_weight <= 1.0:
            raise ConfigError(f"lexical_weight={self.lexical_weight}: must be between 0 and 1")
        probe = self.engine_probe_timeout_s
        if probe is not None and not 0 < probe <= self.search_timeout_s:
            raise ConfigError(f"engine_probe_timeout_s={probe:g}: set it above 0 and at most search_timeout_s "
                              f"({self.search_timeout_s:g}), or leave it unset to wait as long as a search: a probe "
                              "shorter than a node's answers keeps a node that serves searches locked out")
        if self.search_partial not in PARTIAL_RESULTS:
            raise ConfigError(f"search_partial={self.search_partial!r}: choose {one_of(PARTIAL_RESULTS)}")
        if self.knn_rescore_oversample and not 1.0 <= self.knn_rescore_oversample <= 10.0:
            raise ConfigError(f"knn_rescore_oversample={self.knn_rescore_oversample}: 0 (off) or from 1 to 10")
        if self.search_mode not in SEARCH_MODES:
            raise ConfigError(f"search_mode={self.search_mode!r}: choose {one_of(SEARCH_MODES)}")
        unknown = set(self.veto_kinds) - set(DIFFERENCE_KINDS)
        if unknown:
            raise ConfigError(f"answer_veto={self.answer_veto!r}: {', '.join(sorted(unknown))} is not a kind of "
                              f"difference; choose among {one_of(DIFFERENCE_KINDS)}, comma-separated, or leave it "
                              "empty")
        if not 0 <= self.decide_depth <= 50:
            raise ConfigError(f"decide_depth={self.decide_depth}: must be from 0 (no cross-encoder) to 50")
        if not 0.0 <= self.decide_order_band <= 1.0:
            raise ConfigError(f"decide_order_band={self.decide_order_band}: a distance in P(right) from 0 to 1 (1: "
                              "read both orders of every pair)")
        if not 0 <= self.rerank_texts <= 3:
            raise ConfigError(f"rerank_texts={self.rerank_texts}: must be from 1 to 3 texts a candidate, or 0 for all")
        if self.onnx_threads < 0:
            raise ConfigError(f"onnx_threads={self.onnx_threads}: must be 0 (onnxruntime decides) or more")
        for name in ("answer_threshold", "suggest_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0 and not math.isinf(value):
                raise ConfigError(f"{name}={value}: a probability from 0 to 1 (inf: never), or unset for the "
                                  "calibrated value")
        if not 0 <= self.query_log_retention_days <= MAX_RETENTION_DAYS:
            raise ConfigError(f"query_log_retention_days={self.query_log_retention_days}: the days of query log to "
                              f"keep, from 1 to {MAX_RETENTION_DAYS} (100 years), or 0 to keep them all")
        if not 1 <= self.rerank_depth <= 200:
            raise ConfigError(f"rerank_depth={self.rerank_depth}: must be from 1 to 200")
        token = self.admin_token
        if token and (len(token) < ADMIN_TOKEN_MIN_CHARS or token != token.strip()):
            raise ConfigError(f"admin_token must be at least {ADMIN_TOKEN_MIN_CHARS} characters, without surrounding "
                              "whitespace (for example `openssl rand -hex 32`); leave it empty to disable /v1/admin")

    def reserved(self, name: str) -> str | None:
        """What of es-faq's own `name` would clash with, or None: an alias may not take it."""
        for setting in ("dict_index", "vocab_index", "vector_cache_index", "jobs_index"):
            if name == getattr(self, setting):
                return f"{setting} ({name})"
        for setting, pattern in (("query_log_prefix", querylog_pattern(self.query_log_prefix)),
                                 ("dictionary previews", PREVIEW_INDEX_PATTERN)):
            prefix = pattern.removesuffix("*")
            if name == prefix[:-1] or name.startswith(prefix):
                return f"{setting} ({pattern})"
        return None

    @property
    def uses_reranker(self) -> bool:
        """Whether a default search runs the cross-encoder: to decide, or to rerank."""
        return self.decide_depth > 0 or self.search_mode == "rerank"

    def __repr__(self) -> str:
        """The settings with URLs masked and secrets left out: a repr ends up in logs and test reports."""
        shown = []
        for f in fields(self):
            if f.repr:
                value = getattr(self, f.name)
                shown.append(f"{f.name}={mask_url(value)!r}" if isinstance(value, str) and "://" in value
                             else f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)
