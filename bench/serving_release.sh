#!/usr/bin/env bash
# The speed, indexing and engine-down figures of docs/benchmarks.md ("Serving throughput over HTTP",
# "The cross-encoder: fewer, better-packed pairs", "Building and syncing a knowledge base", "The
# engine down") in one run, one after another so they do not share the cores with each other:
#   bench/serving_release.sh OUT_DIR
# Needs the engine (es-faq engine up), MariaDB for the sync part (scripts/mariadb up; its env), and
# /tmp/atec-10k from `bench/sample_bench.py ../shared/data/faq-bench/atec 10000 /tmp/atec-10k`.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/results/serving}"
mkdir -p "$out"
uptime > "$out/load.txt"
py=.venv/bin/python
bench=../shared/data/faq-bench
log() { echo "==> $*" >&2; }
bash -c 'source scripts/lib.sh && ensure_wrk'  # serving_limit.py drives its load with wrk (a subshell: lib.sh sets -e)

log "cross-encoder speed: 20 candidates of 200 atec and 200 diac test queries"
$py bench/rerank_speed.py record bench-atec-10k /tmp/atec-10k "$out/rerank-pairs-atec.jsonl" --depth 20 --limit 200
$py bench/rerank_speed.py record bench-diac "$bench/diac" "$out/rerank-pairs.jsonl" --depth 20 --limit 200
{
  for pairs in "$out/rerank-pairs-atec.jsonl" "$out/rerank-pairs.jsonl"; do
    for variant in int8-static int8-dynamic fp32; do
      $py bench/rerank_speed.py time "$pairs" --variant "$variant"
    done
    for size in 1 4 64; do $py bench/rerank_speed.py time "$pairs" --batch-size "$size"; done
    $py bench/rerank_speed.py time "$pairs" --threads 1
  done
} > "$out/rerank-speed.jsonl"
log "HTTP, mode rerank (20 candidates), 2 and 4 connections"
for c in 2 4; do
  ES_FAQ_SEARCH_MODE=rerank bench/load/run.sh bench-atec-10k /tmp/atec-10k/queries.jsonl 15 "$c" | head -1
done > "$out/http-rerank.jsonl"

log "engine down: 503s and the worker's CPU per refused search"
(cd bench/drills && ../../$py engine_down.py --requests 400) > "$out/engine-down.json"

log "indexing the 10k atec sample from scratch (a fresh vector cache), then again unchanged"
export ES_FAQ_VECTOR_CACHE_INDEX=bench-vectors-scratch-$$
.venv/bin/es-faq index load /tmp/atec-10k/faqs.jsonl --alias bench-index-speed > "$out/index-scratch.json"
.venv/bin/es-faq index load /tmp/atec-10k/faqs.jsonl --alias bench-index-speed > "$out/index-again.json"
curl -s -XDELETE "localhost:9200/$ES_FAQ_VECTOR_CACHE_INDEX" >/dev/null
unset ES_FAQ_VECTOR_CACHE_INDEX

log "in-process latency per stage (atec 10k)"
$py bench/search_latency.py /tmp/atec-10k --limit 400 > "$out/search-latency.json"
log "profile of the HTTP path (Flask test client)"
$py bench/profile_search.py bench-atec-10k /tmp/atec-10k/queries.jsonl 300 > "$out/profile.txt"

log "the serving limit and es-faq over HTTP"
$py bench/serving_limit.py --alias bench-atec-10k --queries /tmp/atec-10k/queries.jsonl --out "$out"

if [ -n "${ES_FAQ_MYSQL_URL:-}" ]; then
  log "MySQL sync of atec (69k FAQs): from scratch, then again unchanged"
  ES_FAQ_VECTOR_CACHE_INDEX=bench-vectors-sync-$$ $py bench/sync_atec.py --again --edits 5 > "$out/sync-atec.json"
  curl -s -XDELETE "localhost:9200/bench-vectors-sync-$$" >/dev/null
fi
uptime >> "$out/load.txt"
log "done: $out"
