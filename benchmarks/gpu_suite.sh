#!/usr/bin/env bash
# The GPU measurements behind docs/training.md ("Measured on a GPU"), in one run of at most SUITE_BUDGET
# seconds (default 480), every result written under one folder as it is measured:
#
#   benchmarks/gpu_suite.sh [OUT]        # on a CUDA machine, from the repository root (OUT default: gpu_suite/)
#   SUITE_CPU=1 benchmarks/gpu_suite.sh  # the same script on the CPU with tiny sizes: checks it runs end to end
#
# 1. train_eager.txt     training it/s and peak memory: PSNR pretraining (RRDB, RRSB) and the four GAN presets,
#                        float32 (TF32 off), TF32 and bf16 autocast (benchmarks/gpu_train_step.py)
# 2. train_compiled.txt  the same, eager beside torch.compile'd, float32 and bf16
# 3. loader.txt          the data loader's batches/s at the paper's batch, 0-8 workers, against the step's it/s
# 4. eval_attention.txt  evaluate's per-image time with exact attention on a 1000x1000 image, the four presets
# 5. rehearsal.md        the paper-scale rehearsal (python -m spsagan.pipeline.rehearsal) on this device
# plus environment.txt (GPU, driver, torch) and suite.log (what ran, how long, what timed out).
#
# Each part gets what is left of the budget, capped at its share, so a slow part cannot starve the rest;
# a part cut by its timeout keeps what it printed. Packages the GPU image lacks (snakemake, dvclive,
# jsonschema, ...) travel as wheels in .whl/ (benchmarks/gpu_wheels.sh prepares them).
set -uo pipefail
OUT=${1:-gpu_suite}
BUDGET=${SUITE_BUDGET:-480}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" PATH="/tmp/site/bin:$PATH"
fi
START=$(date +%s)
log() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$OUT/suite.log"; }

# run NAME CAP_SECONDS FILE COMMAND...: the command under a timeout of min(CAP, what is left), output to FILE.
run() {
  local name=$1 cap=$2 file=$3; shift 3
  local left=$((BUDGET - ($(date +%s) - START)))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 10 ]; then log "$name: skipped, the budget is spent"; return; fi
  log "$name: start (limit ${limit} s): $*"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" > "$OUT/$file" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && log "$name: cut at ${limit} s (partial output kept)" || log "$name: exit $rc"
}

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  nproc
} > "$OUT/environment.txt" 2>&1

if [ -n "${SUITE_CPU:-}" ]; then
  TRAIN=(--tiny --iters 2 --warmup 1)
  run train_eager 240 train_eager.txt $PY benchmarks/gpu_train_step.py "${TRAIN[@]}" --presets esrgan,spsagan \
    --precisions fp32,bf16
  run train_compiled 60 train_compiled.txt $PY benchmarks/gpu_train_step.py "${TRAIN[@]}" --presets esrgan --compile
  run loader 120 loader.txt $PY benchmarks/bench_loader.py --images 1 --batches 4 --workers 0,2
  run eval_attention 120 eval_attention.txt $PY benchmarks/bench_eval_attention.py --tiny --hr 128 --repeats 1
  run rehearsal 900 rehearsal.log $PY -m spsagan.pipeline.rehearsal --reduced --root "$OUT/rehearsal" \
    --out "$OUT/rehearsal.md"
else
  run train_eager 150 train_eager.txt $PY benchmarks/gpu_train_step.py --precisions fp32,tf32,bf16 --iters 10
  run train_compiled 120 train_compiled.txt $PY benchmarks/gpu_train_step.py --compile --precisions fp32,bf16 \
    --presets spsagan --iters 10
  # The step's appetite: pretraining RRDB's eager float32 it/s from part 1 (the fastest consumer of batches).
  APPETITE=$(awk '$1 == "pretrain_psnr" && $2 == "rrdb" && $3 == "fp32" && $5 == "eager" {print $6; exit}' \
    "$OUT/train_eager.txt" 2>/dev/null)
  run loader 45 loader.txt $PY benchmarks/bench_loader.py --images 4 --batches 40 --workers 0,4,8 \
    ${APPETITE:+--appetite "$APPETITE"}
  run eval_attention 45 eval_attention.txt $PY benchmarks/bench_eval_attention.py --hr 1000
  run rehearsal 300 rehearsal.log $PY -m spsagan.pipeline.rehearsal --root "$OUT/rehearsal" --out "$OUT/rehearsal.md"
fi
log "done in $(($(date +%s) - START)) s; results in $OUT/"
