#!/usr/bin/env bash
# Fetch, on a machine with PyPI access, the wheels that benchmarks/gpu_check.sh installs on a GPU box
# that has torch, transformers, peft and accelerate but no internet (and no vLLM).
#
#   bash benchmarks/gpu_wheels.sh            # -> .whl/*.whl (ours) and .whl/trl112/*.whl (PPO baseline)
#
# .whl/ is git-ignored; pass it to the device call as a carried path. Everything here is pure Python
# except pydantic_core (CPython 3.12, manylinux x86_64). ~6 MB in all. TRL 1.12 (the last TRL with a
# PPOTrainer, the PPO baseline) lives in its own folder: two versions of one package cannot be
# installed into one target. If the GPU image's pyarrow is older than 24 (datasets 5.2 needs it), add
# pyarrow to WHEELS (~45 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PLATFORM=(--python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
WHEELS=(trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing_extensions==4.16.0)
mkdir -p .whl/trl112
"$PY" -m pip download -q --no-deps --only-binary=:all: "${PLATFORM[@]}" -d .whl "${WHEELS[@]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: "${PLATFORM[@]}" -d .whl/trl112 "trl==1.12.0"
ls -1 .whl .whl/trl112
