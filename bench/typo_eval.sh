#!/usr/bin/env bash
# R@1 on clean and typo'd queries, with typo correction off (as before issue 14) and on:
#   bench/typo_eval.sh ../shared/data/faq-bench/diac test [LIMIT] [SIDES]
# LIMIT: only the first N queries of the split; SIDES: which runs, default "false:clean false:noisy true:clean true:noisy"
# Needs bench/typo_bench.py's output for the bench (bench/out/typo/<name>). The decision is off
# (decide_depth 0): recall does not depend on it, and the cross-encoder would triple the time.
set -euo pipefail
bench=${1:?faq-bench directory}
split=${2:-test}
limit=${3:-}
sides=${4:-false:clean false:noisy true:clean true:noisy}
name=$(basename "$(realpath "$bench")")
noisy="$(dirname "$0")/out/typo/$name"
out="$(dirname "$0")/out/typo/$name-$split${limit:+-$limit}-results.jsonl"
export ES_FAQ_DECIDE_DEPTH=0
for run in $sides; do
  correction=${run%%:*} side=${run#*:}
  dir=$bench; [ "$side" = noisy ] && dir=$noisy
  ES_FAQ_TYPO_CORRECTION=$correction es-faq eval --bench "$dir" --split "$split" ${limit:+--limit "$limit"} 2>>"$out.log" \
    | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r.update(input='$side', typo_correction='$correction'); print(json.dumps(r))" \
    | tee -a "$out"
done
