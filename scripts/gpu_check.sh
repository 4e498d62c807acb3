#!/usr/bin/env bash
# The GPU check: one run on a CUDA machine, the build included, within a time budget (default
# 500 s, for a device call of at most 9 minutes; sized for an H200 with 16 cores):
#
#   1. build fastsnn._C in place with the CUDA kernels (MAX_JOBS=16, TORCH_CUDA_ARCH_LIST=9.0)
#   2. at the same time, one process each: the GPU tests (`pytest -m cuda`: tests/test_cuda.py,
#      tests/test_rlif_cuda.py), the Triton tests on the GPU (tests/test_triton.py,
#      tests/test_rlif_triton.py), compute-sanitizer memcheck (every kernel) and racecheck (the
#      rlif kernels, the ones with shared memory) on the small cases of scripts/cuda_sanitize.py,
#      checking fastsnn's kernels only (--kernel-name kns=fastsnn)
#   3. the benchmark at its headline sizes on the GPU backends (lif/li: B=64, N=4096,
#      T in {32, 256, 1024}; rlif: B=256, T=1000, N in {128, 512, 1024}), the eager reference
#      as baseline, no torch.compile (compiling the unrolled T-step loop takes minutes)
#
# The CPU tests are CI's (.ci/run). Every step runs under its own `timeout`, cut to what is
# left of the budget; a step that runs out is marked TIMEOUT and the rest still report. Exactly
# two files land in the output folder ($OUT, else $FASTSNN_GPU_OUT, else gpu_out/; or --out):
#   summary.md              versions, the benchmark table, failures, the step table last
#   gpu_check_logs.tar.gz   logs/ (one log per step), bench*/ (results.json, results.md)
# The summary is also printed last. Exit status 0 when every step passed.
#
#   OUT=/tmp/out bash scripts/gpu_check.sh
#   bash scripts/gpu_check.sh --dry-run       # on a CPU machine: every step that needs no GPU
#
# --dry-run checks this script's syntax and argument parsing, imports fastsnn and the Python
# scripts, collects (without running) the GPU test selection, lists the sanitizer runs, runs the
# benchmark commands with the same options at a tiny size on the CPU, and assembles the summary
# and the tarball; the build and compute-sanitizer are placeholders that print their command.
# tests/test_gpu_check.py runs it, so CI does (about 20 s on 2 cores).
#
# Environment: PYTHON (default .venv/bin/python if present, else python3), GPU_CHECK_BUDGET_S
# (500), GPU_CHECK_BUILD_S (270, the build's own cap), GPU_CHECK_DTYPES (benchmark dtypes,
# default float32), GPU_CHECK_SIZES / GPU_CHECK_RLIF_SIZES (benchmark sizes), MAX_JOBS (16),
# TORCH_CUDA_ARCH_LIST (9.0), CUDA_HOME (/usr/local/cuda, else where nvcc is).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

usage() {
  cat <<'EOF'
usage: bash scripts/gpu_check.sh [--dry-run] [--out DIR] [--budget SECONDS]
  --dry-run         run what needs no GPU (CPU machine, CI); GPU steps are placeholders
  --out DIR         where summary.md and gpu_check_logs.tar.gz go (default: $OUT or gpu_out)
  --budget SECONDS  wall-clock budget of the whole check (default: 500)
EOF
}

DRY=0
OUT_DIR="${OUT:-${FASTSNN_GPU_OUT:-gpu_out}}"
BUDGET="${GPU_CHECK_BUDGET_S:-500}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) [ $# -ge 2 ] || { echo "gpu_check.sh: --out needs a folder" >&2; exit 2; }
           OUT_DIR=$2; shift ;;
    --out=*) OUT_DIR=${1#--out=} ;;
    --budget) [ $# -ge 2 ] || { echo "gpu_check.sh: --budget needs seconds" >&2; exit 2; }
              BUDGET=$2; shift ;;
    --budget=*) BUDGET=${1#--budget=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$BUDGET" in
  ''|*[!0-9]*) echo "gpu_check.sh: --budget must be whole seconds" >&2; exit 2 ;;
esac
[ -n "$OUT_DIR" ] || { echo "gpu_check.sh: empty output folder" >&2; exit 2; }

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=$ROOT/.venv/bin/python
else PY=$(command -v python3 || command -v python); fi
# the in-place build (no install): fastsnn, benchmarks and scripts import from the tree
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# pip's ninja (parallel builds) lives next to the interpreter's scripts
SCRIPTS_DIR=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)
[ -n "$SCRIPTS_DIR" ] && PATH="$SCRIPTS_DIR:$PATH"
export PATH
export FASTSNN_BUILD_CUDA=1 FASTSNN_REQUIRE_CUDA_BUILD=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-16}"
if [ -z "${CUDA_HOME:-}" ]; then  # /usr/local/cuda, else where nvcc is
  if [ -d /usr/local/cuda ]; then CUDA_HOME=/usr/local/cuda
  elif command -v nvcc > /dev/null; then CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")"); fi
fi
[ -n "${CUDA_HOME:-}" ] && export CUDA_HOME && PATH="$PATH:$CUDA_HOME/bin"  # compute-sanitizer

START=$SECONDS
DEADLINE=$((START + BUDGET))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/steps" "$OUT_DIR"
SEQ=0
FAILED=0

left() { echo $((DEADLINE - SECONDS)); }

# cap MAX RESERVE: MAX seconds, or less so that RESERVE seconds stay for the later steps
cap() {
  local c=$(( $(left) - $2 ))
  [ "$c" -gt "$1" ] && c=$1
  echo "$c"
}

# step NAME CAP CMD...: run CMD under `timeout CAP`, log to logs/NAME.log, record the result
# (in steps/NN-NAME, NN its place in the table); bg_step: the same in the background
step() { SEQ=$((SEQ + 1)); run_step "$SEQ" "$@"; }
bg_step() { SEQ=$((SEQ + 1)); run_step "$SEQ" "$@" & }
run_step() {
  local rec name=$2 limit=$3
  rec=$WORK/steps/$(printf %02d "$1")-$name
  shift 3
  if [ "$limit" -lt 10 ]; then
    echo "$name|skipped (budget spent)|0" > "$rec"
    echo "== $name: skipped, the budget is spent" >&2
    return 1
  fi
  echo "== $name (<= ${limit} s): $*" >&2
  local t0=$SECONDS rc
  { echo "\$ $*"; echo; } > "$LOGS/$name.log"
  timeout -k 10 "$limit" "$@" >> "$LOGS/$name.log" 2>&1
  rc=$?
  local res=ok
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then res="TIMEOUT (${limit} s)"
  elif [ $rc -ne 0 ]; then res="FAILED (rc $rc)"; fi
  echo "$name|$res|$((SECONDS - t0))" > "$rec"
  echo "== $name: $res in $((SECONDS - t0)) s" >&2
  [ $rc -eq 0 ]
}

skip() {  # skip NAME WHY
  SEQ=$((SEQ + 1))
  echo "$1|skipped ($2)|0" > "$WORK/steps/$(printf %02d $SEQ)-$1"
}

# ------------------------------------------------------------------ 0. the machine
env_info() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD \
    2>/dev/null || echo ' (or a dirty tree)')"
  echo "cores: $(nproc)"
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    2>/dev/null | head -n 1 | grep . || echo none)"
  echo "nvcc: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | head -n 1 | grep . \
    || echo none)"
  echo "compute-sanitizer: $(compute-sanitizer --version 2>/dev/null | grep -io 'version [0-9.]*' \
    | head -n 1 | grep . || echo none)"
  echo "ninja: $(ninja --version 2>/dev/null || echo 'none (serial build)')"
  "$PY" - <<'EOF'
import sys, torch
print(f"python: {sys.version.split()[0]}")
print(f"torch: {torch.__version__} (CUDA {torch.version.cuda})")
try:
    import triton
    print(f"triton: {triton.__version__}")
except ImportError:
    print("triton: not installed")
print(f"cuda visible: {torch.cuda.is_available()}")
EOF
}

echo "gpu_check: budget ${BUDGET} s, logs in $WORK, output in $OUT_DIR" \
  "$([ $DRY = 1 ] && echo '(dry run)')" >&2
if [ $DRY = 1 ]; then
  step syntax 30 bash -n "$ROOT/scripts/gpu_check.sh"
fi
env_info > "$LOGS/env.log" 2>&1
GPU_OK=1
if [ $DRY = 0 ] && ! grep -q "cuda visible: True" "$LOGS/env.log"; then
  GPU_OK=0
  echo "no CUDA device visible to torch (see logs/env.log); on a CPU machine use --dry-run" \
    > "$LOGS/gpu.log"
  SEQ=$((SEQ + 1)); echo "gpu|FAILED (no CUDA device)|0" > "$WORK/steps/$(printf %02d $SEQ)-gpu"
fi

# ------------------------------------------------------------------ 1. build
BUILT=0
if [ $GPU_OK = 1 ]; then
  if [ $DRY = 1 ]; then
    step build 30 echo "dry run, not run here: $PY setup.py build_ext --inplace" && BUILT=1
    step import 60 "$PY" -c "import fastsnn; print('backends:', fastsnn.available_backends())"
  else
    # 120 s stay for the tests and the benchmark at least
    step build "$(cap "${GPU_CHECK_BUILD_S:-270}" 120)" "$PY" setup.py build_ext --inplace \
      && step import 60 "$PY" -c "import fastsnn; b = fastsnn.available_backends(); \
print('backends:', b); assert 'cuda' in b, 'no cuda backend'" && BUILT=1
  fi
fi

# ------------------------------------------------------------------ 2. tests and sanitizers
if [ $BUILT = 1 ]; then
  PYTEST=("$PY" -m pytest -q -p no:cacheprovider -rfE --durations=8)
  # the files with GPU tests only: the rest are CI's, and may need packages this machine lacks;
  # the Triton files run on the GPU where one is visible (in the interpreter in a dry run)
  GPU_FILES=()
  for f in tests/test_*.py; do
    case $f in tests/test_triton.py|tests/test_rlif_triton.py) continue ;; esac
    grep -qE "pytest\.mark\.cuda|@on_gpu" "$f" && GPU_FILES+=("$f")
  done
  SANITIZE=(compute-sanitizer --error-exitcode 1 --kernel-name kns=fastsnn)
  MEMCHECK=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "${SANITIZE[@]}" --tool memcheck
            "$PY" scripts/cuda_sanitize.py)
  # racecheck checks shared memory, which only the rlif kernels use
  RACECHECK=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "${SANITIZE[@]}" --tool racecheck
             "$PY" scripts/cuda_sanitize.py --ops rlif)
  if [ $DRY = 1 ]; then  # collect the tests; print the sanitizer commands, list their runs
    # shellcheck disable=SC2016  # expanded by the inner bash
    SHOW='echo "dry run, not run here: $*"; exec "$0" scripts/cuda_sanitize.py --plan'
    MEMCHECK=(bash -c "$SHOW" "$PY" "${MEMCHECK[@]}")
    RACECHECK=(bash -c "$SHOW --ops rlif" "$PY" "${RACECHECK[@]}")
    PYTEST+=(--collect-only)
  fi
  PAR=$(cap 210 140)  # 140 s stay for the benchmark
  bg_step tests-cuda "$PAR" "${PYTEST[@]}" -m cuda "${GPU_FILES[@]}"
  bg_step tests-triton "$PAR" "${PYTEST[@]}" tests/test_triton.py
  bg_step tests-triton-rlif "$PAR" "${PYTEST[@]}" tests/test_rlif_triton.py
  bg_step memcheck "$PAR" "${MEMCHECK[@]}"
  bg_step racecheck "$PAR" "${RACECHECK[@]}"
  wait

# ------------------------------------------------------------------ 3. benchmark
  DTYPES=${GPU_CHECK_DTYPES:-float32}
  BENCH=("$PY" -m benchmarks.run --modes "fwd,fwdbwd" --dtypes "$DTYPES" --compile-ref off
         --reps 3 --min-time 0.05 --no-plot)
  if [ $DRY = 1 ]; then
    BENCH+=(--device cpu --reps 1 --min-time 0)
    SIZES="2,8,16"; RLIF_SIZES="2,8,16"
  else
    BENCH+=(--device cuda)
    SIZES=${GPU_CHECK_SIZES:-64,32,4096;64,256,4096;64,1024,4096}
    RLIF_SIZES=${GPU_CHECK_RLIF_SIZES:-256,1000,128;256,1000,512;256,1000,1024}
  fi
  step bench "$(cap 110 70)" "${BENCH[@]}" --ops lif,li --sizes "$SIZES" --out "$WORK/bench"
  step bench-rlif "$(cap 110 10)" "${BENCH[@]}" --ops rlif --sizes "$RLIF_SIZES" \
    --out "$WORK/bench_rlif"
elif [ $GPU_OK = 1 ]; then
  for s in tests-cuda tests-triton tests-triton-rlif memcheck racecheck bench bench-rlif; do
    skip "$s" "no build"
  done
fi

# ------------------------------------------------------------------ 4. summary, tarball
note() {  # a short note on a step from its log
  local log=$LOGS/$1.log
  [ -f "$log" ] || return 0
  case $1 in
    tests-*) grep -E "[0-9]+ (passed|failed|error|skipped|deselected)|tests? collected" "$log" \
               | tail -n 1 | sed 's/^=* *//; s/ *=*$//' ;;
    memcheck|racecheck) grep -E "ERROR SUMMARY|RACECHECK SUMMARY|forward\+backward runs" "$log" \
               | sed 's/^=* *//' | tail -n 2 | paste -sd';' - ;;
    build) { grep -E "error:" "$log" | head -n 1 | grep . || grep . "$log" | tail -n 1; } \
             | cut -c1-100 ;;
    bench*) echo "$(grep -cE '\| ok \|$' "$log") cases ok, $(grep -cE '\| (MISMATCH|ERROR) \|$' \
              "$log") MISMATCH/ERROR" ;;
    *) grep . "$log" | tail -n 1 | cut -c1-100 ;;
  esac
}

for f in "$WORK"/steps/*-bench*; do  # a benchmark that disagrees with the reference fails
  [ -f "$f" ] || continue
  IFS='|' read -r name res secs < "$f"
  n=$(grep -cE '\| (MISMATCH|ERROR) \|$' "$LOGS/$name.log" 2>/dev/null)
  [ "$res" = ok ] && [ "${n:-0}" -gt 0 ] && echo "$name|FAILED ($n MISMATCH/ERROR)|$secs" > "$f"
done
SUMMARY=$WORK/summary.md
{
  echo "# fastsnn GPU check$([ $DRY = 1 ] && echo ' (dry run on a CPU machine)')"
  echo
  sed 's/^/- /' "$LOGS/env.log"
  [ -f "$LOGS/import.log" ] && grep '^backends:' "$LOGS/import.log" | sed 's/^/- /'
  echo
  "$PY" - "$WORK" <<'EOF' 2>>"$LOGS/summary_errors.log"
import json, pathlib, sys
rows = []
for f in sorted(pathlib.Path(sys.argv[1]).glob("bench*/results.json")):
    rows += json.loads(f.read_text())["rows"]
if rows:
    provs = [p for p in dict.fromkeys(r["provider"] for r in rows) if p != "torch"]
    print("## Benchmark: median ms, speedup over the eager reference (torch)\n")
    print("| op | mode | dtype | B,T,N | torch ms | " + " | ".join(provs) + " |")
    print("| --- " * (5 + len(provs)) + "|")
    cases = {}
    for r in rows:
        key = (r["op"], r["mode"], r["dtype"], f'{r["B"]},{r["T"]},{r["N"]}')
        cases.setdefault(key, {})[r["provider"]] = r
    def cell(r):
        if r is None:
            return "-"
        if r["status"] != "ok":
            return r["status"]
        s = f'{r["time_ms"]:.3g}' + (" noisy" if r.get("noisy") else "")
        if not r.get("speedup"):
            return s
        return s + f' ({r["speedup"]:.3g}x' + (" noisy)" if r.get("speedup_noisy") else ")")
    for key, by in cases.items():
        print("| " + " | ".join(key) + " | " + " | ".join(cell(by.get(p)) for p in
                                                       ["torch"] + provs) + " |")
    print()
EOF
  bad=0
  for f in "$WORK"/steps/*; do
    IFS='|' read -r name res secs < "$f"
    case $res in ok|skipped*) continue ;; esac
    [ $bad = 0 ] && { echo "## Failures (full logs in gpu_check_logs.tar.gz)"; echo; }
    bad=1
    echo "### $name: $res"
    echo '```'
    if [ -f "$LOGS/$name.log" ]; then
      case $name in
        tests-*) grep -E "^(FAILED|ERROR) |^E  " "$LOGS/$name.log" | head -n 20 ;;
        memcheck|racecheck) grep -E "^========= +(Invalid|Error|Race|Warning|at )" \
                              "$LOGS/$name.log" | head -n 12 ;;
        bench*) grep -E "\| (MISMATCH|ERROR) \|$|^- .*: (MISMATCH|ERROR)" "$LOGS/$name.log" \
                  | head -n 12 ;;
      esac > "$WORK/excerpt"
      [ -s "$WORK/excerpt" ] || tail -n 12 "$LOGS/$name.log" > "$WORK/excerpt"
      cut -c1-200 "$WORK/excerpt"
    fi
    echo '```'
    echo
  done
  echo "## Steps ($((SECONDS - START)) s of a ${BUDGET} s budget)"
  echo
  echo "| step | result | s | note |"
  echo "| --- | --- | --- | --- |"
  for f in "$WORK"/steps/*; do
    IFS='|' read -r name res secs < "$f"
    [ "$res" = ok ] || FAILED=1  # a step skipped for lack of time leaves the check unfinished
    echo "| $name | $res | $secs | $(note "$name" | tr '|' '/') |"
  done
} > "$SUMMARY"
cp "$SUMMARY" "$LOGS/summary.md"
[ -s "$LOGS/summary_errors.log" ] || rm -f "$LOGS/summary_errors.log"
PARTS=()
for d in logs bench bench_rlif; do [ -d "$WORK/$d" ] && PARTS+=("$d"); done
tar -czf "$OUT_DIR/gpu_check_logs.tar.gz" -C "$WORK" "${PARTS[@]}"
cp "$SUMMARY" "$OUT_DIR/summary.md"
rm -rf "$WORK"
echo
cat "$OUT_DIR/summary.md"
exit $FAILED
