"""benchmarks/train_precision.py runs our DPO stage (real TRL steps) once per mode in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_precision.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SCRIPT.parents[1]))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_checkpointing_takes_the_same_steps_and_the_ratio_is_printed(tiny_model_dir, dpo_pairs_file):
    args = ["--model", str(tiny_model_dir), "--pairs", str(dpo_pairs_file), "--limit", "16"]
    done = _run(*args, "--modes", "fp32+gc,fp32")
    assert done.returncode == 0, done.stderr[-2000:]
    print(done.stdout)
    assert "fp32+gc :" in done.stdout and "ratios against fp32+gc (16 pairs" in done.stdout
    # 2 steps: the second follows an update. Recomputing activations changes the cost, never the
    # arithmetic, so the losses are the very same
    assert "per-step loss vs baseline: max |diff| 0.00e+00" in done.stdout


def test_a_bad_mode_or_a_missing_file_is_one_line(tiny_model_dir, tmp_path):
    bad = _run(
        "--model", str(tiny_model_dir), "--pairs", str(tiny_model_dir / "config.json"), "--modes", "fp16"
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--modes: expected fp32 or bf16, optionally with +gc, got 'fp16'" in bad.stderr
    missing = _run("--model", str(tiny_model_dir), "--pairs", str(tmp_path / "none.jsonl"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert f"--pairs: {tmp_path / 'none.jsonl'} does not exist" in missing.stderr
