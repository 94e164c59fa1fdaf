#!/usr/bin/env bash
# GPU check of the training stages in ONE call (~7 min on one H200): the training tests on CUDA, the
# PPO throughput benchmark (ours vs TRL 1.12) and the DPO stage-overhead benchmark, then one summary.
#
# For a machine with torch, transformers, peft and accelerate but no internet and no vLLM: first run
# `bash benchmarks/gpu_wheels.sh` where PyPI is reachable (it fills the git-ignored .whl/), carry .whl
# to the machine, then from the repository root:
#
#   bash benchmarks/gpu_check.sh                       # CUDA, 100m models (32k vocab), bf16 autocast
#   bash benchmarks/gpu_check.sh --device cpu --quick  # dry run of the same logic on a CPU (tiny models)
#
# Wheels in .whl/*.whl install with --no-deps into a --target folder put on PYTHONPATH; .whl/trl112/
# (TRL 1.12, the PPO baseline) into a second folder used only by the baseline's interpreter. Without
# vLLM the tests that need its engine are skipped (reported in the summary), not failed. Logs go to
# $OUT when set (the device tool's output folder), else /tmp/rlaif_gpu_check; WHEELS=DIR reads the
# wheels from DIR instead of .whl. Exit status: 0 when the tests passed and both benchmarks ran.
# CI never runs this.
set -uo pipefail

DEVICE=cuda QUICK=0 PRECISION=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --precision) PRECISION="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cpu|cuda|auto) ;; *) echo "gpu_check: --device must be cpu, cuda or auto" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
LOG=${OUT:-/tmp/rlaif_gpu_check}
WHL=${WHEELS:-.whl}
SITE=/tmp/rlaif_gpu_site
SITE112=/tmp/rlaif_gpu_site_trl112
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
[ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES=""

if [ "$QUICK" = 1 ]; then
  TESTS=(tests/train/test_precision.py tests/train/test_ppo_math.py)
  PPO_ARGS=(--size tiny --steps 2 --repeats 1 --batch-size 4 --minibatch-size 4 --ppo-epochs 1 --max-new-tokens 8)
  DPO_ARGS=(--size tiny --pairs 16 --repeats 1)
  T_TESTS=600 T_PPO=300 T_DPO=300
else
  TESTS=(tests/train)
  PPO_ARGS=(--size 100m --steps 4 --repeats 2)
  DPO_ARGS=(--size 100m --pairs 64 --repeats 2)
  T_TESTS=220 T_PPO=110 T_DPO=90  # ~7 min together on one H200
fi

# -- packages ------------------------------------------------------------------------------------
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$WHL/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl \
    || { echo "gpu_check: installing $WHL/*.whl into $SITE failed" >&2; exit 2; }
  export PYTHONPATH="$ROOT:$SITE${PYTHONPATH#"$ROOT"}"
fi
TRL112=()
if compgen -G "$WHL/trl112/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE112" "$WHL"/trl112/*.whl \
    || { echo "gpu_check: installing $WHL/trl112 into $SITE112 failed" >&2; exit 2; }
  WRAP=/tmp/rlaif_trl112_python
  printf '#!/bin/sh\nPYTHONPATH=%s:"$PYTHONPATH" exec %s "$@"\n' "$SITE112" "$(command -v "$PY")" >"$WRAP"
  chmod +x "$WRAP"
  TRL112=(--trl-python "$WRAP")
fi
ENV_LINE=$("$PY" - "$DEVICE" <<'EOF' 2>"$LOG/env.err"
import importlib.util, sys
import torch, transformers, peft, accelerate, trl, datasets, pydantic  # noqa: F401 - all must import
want = sys.argv[1]
if want == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch")
dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
vllm = "present" if importlib.util.find_spec("vllm") else "missing (tests that need it are skipped)"
print(f"{dev}; torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
      f"peft {peft.__version__}, accelerate {accelerate.__version__}; vllm {vllm}")
EOF
) || { echo "gpu_check: environment not usable: $(tail -1 "$LOG/env.err")" >&2; exit 2; }
echo "gpu_check: $ENV_LINE"

status=0
run_part() {  # name, limit, log, command...
  local name=$1 limit=$2 log=$3; shift 3
  echo "gpu_check: $name (limit ${limit}s) ..."
  timeout "$limit" "$@" >"$log" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && echo "TIMED OUT after ${limit}s" >>"$log"
  [ $rc -ne 0 ] && status=1
  return 0
}

run_part "training tests" "$T_TESTS" "$LOG/tests.log" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
run_part "PPO throughput" "$T_PPO" "$LOG/ppo.log" \
  "$PY" benchmarks/ppo_throughput.py --device "$DEVICE" --precision "$PRECISION" "${PPO_ARGS[@]}" "${TRL112[@]}"
run_part "DPO overhead" "$T_DPO" "$LOG/dpo.log" \
  "$PY" benchmarks/dpo_overhead.py --device "$DEVICE" --precision "$PRECISION" "${DPO_ARGS[@]}"

# -- one summary ---------------------------------------------------------------------------------
last() { grep -E "$1" "$2" | tail -1; }
tests_line=$(last '(passed|failed|error|no tests ran)' "$LOG/tests.log")
grep -q "TIMED OUT" "$LOG/tests.log" && tests_line="TIMED OUT after ${T_TESTS}s; ${tests_line:-no summary}"
ppo_ours=$(last '^ours +:' "$LOG/ppo.log")
ppo_ratio=$(last '^ratio ours/TRL' "$LOG/ppo.log")
[ -z "$ppo_ratio" ] && ppo_ratio=$(last '^TRL 1.12 +:' "$LOG/ppo.log")
dpo_over=$(last '^overhead' "$LOG/dpo.log")
echo
echo "================ rlaif training GPU check ================"
echo "environment : $ENV_LINE"
echo "tests       : ${tests_line:-no pytest summary (see $LOG/tests.log)}"
echo "PPO         : ${ppo_ours:-no result (see $LOG/ppo.log)}"
echo "              ${ppo_ratio:-}"
echo "DPO         : ${dpo_over:-no result (see $LOG/dpo.log)}"
grep -h "SKIPPED" "$LOG/tests.log" | sed 's/^/  /' | head -8
grep -h "^FAILED\|^ERROR\|TIMED OUT" "$LOG/tests.log" "$LOG/ppo.log" "$LOG/dpo.log" | sed 's/^/  /' | head -12
echo "logs        : $LOG (tests.log, ppo.log, dpo.log); status $([ $status = 0 ] && echo OK || echo FAILED)"
exit $status
