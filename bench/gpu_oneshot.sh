#!/usr/bin/env bash
# One-shot GPU measurement of the cross-encoder, for a lent accelerator (issue 11):
#   bench/gpu_oneshot.sh PAIRS_JSONL [OUT_DIR]
# PAIRS_JSONL comes from `bench/rerank_speed.py record` on a machine with the index (no
# Elasticsearch is needed here). Needs a Python with onnxruntime-gpu (`pip uninstall -y onnxruntime
# && pip install -e '.[gpu]'`) and the models in the cache (`es-faq models pull`). It prints the
# provider that actually ran each variant (a CPU fallback shows as CPUExecutionProvider, and the
# runtime logs a warning), then the same runs on the CPU for comparison; one JSON line each.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs="$1" out="${2:-bench/results/gpu}"
python="${PYTHON:-.venv/bin/python}"
mkdir -p "$out"
"$python" - <<'PY' | tee "$out/providers.txt"
import onnxruntime as ort
print("onnxruntime", ort.__version__, "device", ort.get_device(), "providers", ort.get_available_providers())
PY
{
  for variant in int8-static fp32; do
    for texts in 0 1; do
      "$python" bench/rerank_speed.py time "$pairs" --variant "$variant" --texts "$texts" --repeat 3
    done
  done
  # The same on the CPU: hide the GPU from onnxruntime.
  CUDA_VISIBLE_DEVICES= "$python" bench/rerank_speed.py time "$pairs" --variant int8-static --texts 0
} | tee "$out/rerank-speed.jsonl"
