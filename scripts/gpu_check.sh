#!/usr/bin/env bash
# The GPU check, in one run on a CUDA machine (about 8 minutes on an H200 with the build):
# build with the CUDA kernels, run the whole test suite on the GPU (the cuda-marked tests and
# the Triton kernels compiled for the device), compute-sanitizer memcheck and racecheck on a
# small case, then the benchmark runner for the GPU backends. Full logs go to $OUT (or
# $FASTSNN_GPU_OUT, default gpu_out/); the short summary table is printed last.
#
#   OUT=/tmp/out bash scripts/gpu_check.sh
#   GPU_CHECK_SIZES="64,1024,4096" GPU_CHECK_COMPILE_MAX_T=256 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-${FASTSNN_GPU_OUT:-gpu_out}}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
SIZES="${GPU_CHECK_SIZES:-64,32,4096;64,256,4096;64,1024,4096}"
RLIF_SIZES="${GPU_CHECK_RLIF_SIZES:-256,1000,128;256,1000,512;256,1000,1024}"
COMPILE_MAX_T="${GPU_CHECK_COMPILE_MAX_T:-32}"  # the reference under torch.compile: compile
                                                # time grows with T (the loop is unrolled)
SUMMARY="$OUT/summary.md"
: > "$SUMMARY"
status=0

step() {  # step NAME LOGFILE CMD...: run, time, record pass/fail in the summary
  local name=$1 log=$2; shift 2
  local t0=$SECONDS
  echo "== $name: $*" | tee -a "$OUT/commands.log"
  "$@" > "$OUT/$log" 2>&1
  local rc=$?
  local line="| $name | $([ $rc -eq 0 ] && echo ok || echo "FAILED (rc $rc)") | $((SECONDS - t0)) s | $log |"
  echo "$line" >> "$SUMMARY.steps"
  [ $rc -eq 0 ] || status=1
  return $rc
}

{
  echo "# fastsnn GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    | sed 's/^/- device: /'
  "$PY" -c "import torch, sys; print(f'- torch {torch.__version__}, CUDA {torch.version.cuda}, python {sys.version.split()[0]}')"
  "$PY" -c "import triton; print(f'- triton {triton.__version__}')" 2>/dev/null
} >> "$SUMMARY"
: > "$SUMMARY.steps"

export FASTSNN_BUILD_CUDA=1 FASTSNN_REQUIRE_CUDA_BUILD=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"

if step build build.log "$PY" -m pip install --no-deps --no-build-isolation -e .; then
  "$PY" -c "import fastsnn; print('- backends:', ', '.join(fastsnn.available_backends()))" \
    >> "$SUMMARY" 2>&1
  step tests tests.log "$PY" -m pytest -q tests -p no:cacheprovider
  step memcheck memcheck.log compute-sanitizer --tool memcheck --error-exitcode 1 \
    "$PY" scripts/cuda_sanitize.py
  step racecheck racecheck.log compute-sanitizer --tool racecheck --error-exitcode 1 \
    "$PY" scripts/cuda_sanitize.py
  step bench bench.log "$PY" -m benchmarks.run --device cuda --ops lif,li --modes fwd,fwdbwd \
    --dtypes float32,bfloat16 --sizes "$SIZES" --compile-max-t "$COMPILE_MAX_T" \
    --out "$OUT/bench"
  # rlif, the issue's sizes: B=256, N in {128, 512, 1024}, T=1000 (the reference under
  # torch.compile only up to --compile-max-t: compiling the unrolled 1000-step loop is too slow)
  step bench-rlif bench_rlif.log "$PY" -m benchmarks.run --device cuda --ops rlif \
    --modes fwd,fwdbwd --dtypes float32,bfloat16 --sizes "$RLIF_SIZES" \
    --compile-max-t "$COMPILE_MAX_T" --reps 3 --min-time 0.1 --out "$OUT/bench_rlif"
fi

{
  echo
  echo "| step | result | time | log |"
  echo "| --- | --- | --- | --- |"
  cat "$SUMMARY.steps"
  echo
  grep -E "passed|failed" "$OUT/tests.log" 2>/dev/null | tail -n 1 | sed 's/^/tests: /'
  echo
  [ -f "$OUT/bench/results.md" ] && cat "$OUT/bench/results.md"
  [ -f "$OUT/bench_rlif/results.md" ] && cat "$OUT/bench_rlif/results.md"
} >> "$SUMMARY"
rm -f "$SUMMARY.steps"
cat "$SUMMARY"
exit $status
