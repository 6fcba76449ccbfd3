#!/usr/bin/env bash
# From a trained cross-encoder to the shipped model and every figure docs/benchmarks.md quotes:
#   bench/reranker_release.sh [NAME]          (default reranker-zh; needs the [train] extra and a node)
# 1. finish or resume the run and export it (fp32 + static INT8), 2. compare quantizations,
# 3. ship the INT8 file into onnx_models/, 4. calibrate the decision on diac dev and write it (bq's
# gold-hidden queries are no reliable no-matches: its duplicate FAQs answer them), 5. the decision and
# recall on diac test and bq test, 6. pair accuracy on every dev corpus and on generated hard cases,
# 7. the ablation against PREVIOUS (a model name in the cache; optional second argument).
# Each step's output goes to bench/results/NAME/; curves go to docs/img/.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME="${1:-reranker-zh}"
PREVIOUS="${2:-}"
BENCH="${ES_FAQ_BENCH_DIR:-../shared/data/faq-bench}"
OUT="bench/results/$NAME"
mkdir -p "$OUT" docs/img
export ES_FAQ_RERANK_MODEL="$NAME"
step() { echo "==> $*" >&2; }

step "train (resumes; exports when done)"
es-faq train reranker "$NAME" > "$OUT/train.json"
step "quantization: fp32, dynamic and static INT8"
python bench/quantization.py "$NAME" > "$OUT/quantization.jsonl"
step "ship"
es-faq models ship "$NAME"
step "calibrate on diac dev"
es-faq calibrate --bench "$BENCH/diac" --split dev --write --curve docs/img > "$OUT/calibrate.json"
step "evaluate: diac test (the decision), bq test (recall)"
es-faq eval --bench "$BENCH/diac" --split test --mode hybrid --curve docs/img --json "$OUT/eval-diac-test.jsonl"
es-faq eval --bench "$BENCH/bq" --split test --mode hybrid --json "$OUT/eval-bq-test.jsonl"
step "pairs: every dev corpus, generated hard cases of diac dev"
es-faq eval-pairs > "$OUT/eval-pairs.json"
if [ -n "$PREVIOUS" ]; then
  step "ablation: $PREVIOUS and $NAME, with and without the difference features"
  python bench/decision_ablation.py --model "$PREVIOUS" --model "$NAME" --fit-bench bq --out "$OUT/ablation"
fi
step "done: $OUT"
