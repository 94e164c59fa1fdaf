"""The shipped HH pipelines run on the shipped HH data (slow: a real ``rlaif run`` per pipeline).

``pipelines/rlcd_harmless.yaml`` and ``pipelines/constitutional.yaml`` used to stop at
``harmless-base_test.jsonl.gz:668`` (turns not alternating) in round 0. Here each runs, as shipped
apart from overrides that fit a CPU and the tiny model, on the HH records numbered 660-672 (so the
malformed 668 falls inside the selection) for one round, and must finish with the malformed records
skipped and counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["rlcd_harmless", "constitutional"])
def test_shipped_hh_pipeline_runs_past_line_668(pipeline, tmp_path, tiny_model_dir, shared_data):
    overrides = [
        f"policy.path={tiny_model_dir}",
        f"output_dir={tmp_path}",
        "engine.max_model_len=1024",
        "engine.kv_cache_gb=0.25",
        "prompts.id_range=[660, 672]",
        "prompts.limit=null",
        "feedback.chunk_size=8",
        "rounds=1",
        "dpo.max_steps=1",
        "dpo.per_device_train_batch_size=2",
        "dpo.max_length=256",
        "final.kind=none",
        "eval.win_rate_prompts.limit=3",
        "eval.win_rate_limit=3",
        "eval.max_tokens=8",
        # the random tiny model neither follows the judge's format nor writes pairs worth keeping
        "health.max_judge_invalid_rate=null",
        "health.min_pairs=0",
    ]
    overrides += ["feedback.options.sampling.max_tokens=12"]  # rlcd and rl_cai: one nested sampling block
    if pipeline == "constitutional":  # the SL-CAI stage's three sampling blocks, and one SFT step
        overrides += [f"sft.feedback.options.{k}.max_tokens=12" for k in ("response", "critique", "revision")]
        overrides += [
            "sft.feedback.options.few_shot=0",
            "sft.options.max_steps=1",
            "sft.options.max_length=256",
        ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "rlaif.cli", "run", str(REPO / "pipelines" / f"{pipeline}.yaml"), *overrides],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "harmless-base_test.jsonl.gz:668" in res.stderr  # the note names the first skipped record
    fb = json.loads((tmp_path / pipeline / "round_1" / "feedback" / "manifest.json").read_text())["summary"]
    assert fb["counts"]["prompts_in"] == 12  # 660-672 without 668
    assert fb["counts"]["prompts_skipped_malformed"] >= 1
    assert fb["inputs"]["skipped_examples"][0].endswith(
        "harmless-base_test.jsonl.gz:668: field 'chosen': turn 5 is 'Assistant:' where 'Human:' was expected "
        "(turns must alternate)"
    )
    assert json.loads((tmp_path / pipeline / "status.json").read_text())["status"] == "ok"
