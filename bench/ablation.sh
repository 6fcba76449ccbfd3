#!/usr/bin/env bash
# The ablation table of docs/benchmarks.md: every mode, with the base and the fine-tuned embedder.
#   bench/ablation.sh BENCH_DIR SPLIT [EMBEDDERS...] [-- extra es-faq eval arguments, e.g. --limit 500]
# Rows go to bench/out/ablation-<bench>-<split>-<embedder>.jsonl and to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
bench="$1" split="$2"
shift 2
embedders=() extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  embedders+=("$1"); shift
done
[ ${#embedders[@]} -gt 0 ] || embedders=(bge-small-zh-v1.5-q "embedder-$(basename "$bench")")
mkdir -p bench/out
for embedder in "${embedders[@]}"; do
  out="bench/out/ablation-$(basename "$bench")-$split-$embedder.jsonl"
  ES_FAQ_EMBED_MODEL="$embedder" .venv/bin/es-faq eval --bench "$bench" --split "$split" --mode all \
    --json "$out" "${extra[@]}" | sed "s/^{/{\"embedder\": \"$embedder\", /"
done
