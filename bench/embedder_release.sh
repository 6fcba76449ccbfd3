#!/usr/bin/env bash
# An embedder's retrieval figures (docs/benchmarks.md, "The embedder"): vector and hybrid R@k on
# diac, bq and atec, and the typo bench's clean and noisy R@1, with the decision off (recall does
# not depend on it). Each bench gets an index of its own per embedder (evaluation/bench.py).
#   bench/embedder_release.sh MODEL OUT_DIR [SPLITS...]      (default splits: diac:dev diac:test bq:dev bq:test atec:test)
# Rows: OUT_DIR/retrieval.jsonl (one per bench, split and mode; MODES="vector hybrid" by default);
# the typo runs: OUT_DIR/typo-diac-test.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?embedding model name} out=${2:?output directory}
shift 2
splits=("$@")
[ ${#splits[@]} -gt 0 ] || splits=(diac:dev diac:test bq:dev bq:test atec:test)
benches=${ES_FAQ_BENCH_DIR:-../shared/data/faq-bench}
mkdir -p "$out"
export ES_FAQ_EMBED_MODEL="$model" ES_FAQ_DECIDE_DEPTH=0
for spec in "${splits[@]}"; do
  bench=${spec%%:*} split=${spec#*:}
  echo "== $model $bench $split ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))" >&2
  for mode in ${MODES:-vector hybrid}; do
    .venv/bin/es-faq eval --bench "$benches/$bench" --split "$split" --mode "$mode" \
      | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r.update(bench='$bench', split='$split'); print(json.dumps(r))" \
      | tee -a "$out/retrieval.jsonl"
  done
done
if [ -d bench/out/typo/diac ] && [ -z "${SKIP_TYPO:-}" ]; then
  for side in clean noisy; do
    dir="$benches/diac"; [ "$side" = noisy ] && dir=bench/out/typo/diac
    .venv/bin/es-faq eval --bench "$dir" --split test \
      | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r.update(input='$side'); print(json.dumps(r))" \
      | tee -a "$out/typo-diac-test.jsonl"
  done
fi
