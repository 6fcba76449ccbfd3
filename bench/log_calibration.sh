#!/usr/bin/env bash
# The decision calibrated on a simulated query log (bench/log_calibration.py), measured on diac test: labels from
# feedback alone, and random samples of the log labelled as a person would. The shipped decision.json is put back.
#   bash bench/log_calibration.sh OUT [SAMPLE...]        SEED=1 bash ... draws other samples
set -euo pipefail
out=$1; shift
sizes=("${@:-1000}")
diac=../shared/data/faq-bench/diac
decision=onnx_models/reranker-zh/decision.json
work=/tmp/log-calibration
trap 'git checkout -- "$decision"' EXIT
rm -rf "$work"; mkdir -p "$out" "$work"
step() { echo "$1; load $(cut -d' ' -f1 /proc/loadavg) at $(date -u +%FT%TZ)"; }
measure() {  # $1: a labelled bench directory, $2: the name of its results
  step "$2: calibrate"
  if ! es-faq calibrate --bench "$1" --split dev --write > "$out/calibrate-$2.json" 2> "$work/calibrate-$2.err"; then
    tr '\r' '\n' < "$work/calibrate-$2.err" | grep -E "^(warning|error)" | tee "$out/calibrate-$2.refused.txt"
    return 0
  fi
  cp "$decision" "$out/decision-$2.json"
  step "$2: diac test"
  es-faq eval --bench "$diac" --split test --judgements bench/judgements/diac.jsonl > "$out/test-$2.json"
  git checkout -- "$decision"
}
seed=${SEED:-0}
if [ ! -e "$out/serve.json" ]; then  # the query log is kept (bench-querylog-*): later runs sample it again
  step "shipped calibration: diac test"
  es-faq eval --bench "$diac" --split test --judgements bench/judgements/diac.jsonl > "$out/test-shipped.json"
  step "serve diac dev with feedback"
  python bench/log_calibration.py serve "$diac" bench-diac "$work" > "$out/serve.json"
  measure "$work/feedback" feedback
fi
for size in "${sizes[@]}"; do
  name=sample-$size$([ "$seed" = 0 ] || echo "-seed$seed")
  step "$name"
  python bench/log_calibration.py sample "$diac" bench-diac "$work/$name" --sample "$size" --seed "$seed" \
    > "$out/$name.json"
  measure "$work/$name" "$name"
done
step done
