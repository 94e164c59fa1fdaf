"""GRPO and RLOO under ``accelerate launch --num_processes 2`` (gloo on CPU).

- Equivalence: TRL's trainers, built from our stage config, on fixed rollouts (grpo_ddp_worker.py says
  why sampling must be fixed), give the weights of one process holding the same global batch.
- The stage as the pipeline launches it (``rlaif train grpo --config``, real sampling, a reward named
  in the YAML) runs to the end on two processes. Its weights cannot equal one process's: TRL seeds each
  process differently, so the two runs sample different completions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_ppo_ddp import accelerate_cmd, assert_same_weights, state

from rlaif.records import Message, PromptRecord, write_jsonl
from rlaif.train.launch import LaunchSettings, run_stage

WORKER = Path(__file__).with_name("grpo_ddp_worker.py")
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(cmd: list[str]) -> None:
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow  # ~1-2 min per stage here: one process, then two under accelerate launch
@pytest.mark.parametrize("stage", ["grpo", "rloo"])
def test_two_processes_equal_one_process_on_fixed_rollouts(stage, tiny_model_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, str(WORKER), stage, str(tiny_model_dir), str(one), "8"])
    _run([*accelerate_cmd(2), str(WORKER), stage, str(tiny_model_dir), str(two), "4"])
    a, b = state(one / "model.safetensors"), state(two / "model.safetensors")
    start = state(Path(tiny_model_dir) / "model.safetensors")
    moved = max(float((a[k].float() - start[k].float()).abs().max()) for k in a)
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"{stage} 2 vs 1 process: max |diff| {worst:.2e}, moved {moved:.2e}")
    assert moved > 1000 * worst, (moved, worst)  # the steps trained; the processes agree far closer
    assert_same_weights(a, b, stage)


def reward_module(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ddp_rewards.py").write_text(
        "def varied(prompts, completions, completion_ids, **_):\n"
        "    return [float(len(ids) % 3) for ids in completion_ids]\n"
    )
    return folder


@pytest.mark.slow  # two processes import torch and TRL, then sample and train (~1-2 min here)
def test_grpo_stage_runs_to_the_end_on_two_processes(tiny_model_dir, tmp_path):
    from rlaif.train.configs import GRPOConfig, PolicySpec, RewardSpec

    prompts = tmp_path / "prompts.jsonl"
    write_jsonl(
        prompts,
        [
            PromptRecord(id=f"p{i}", messages=[Message(role="user", content=f"Tell me about {i}.")])
            for i in range(4)
        ],
    )
    cfg = GRPOConfig(
        output_dir=tmp_path / "out",
        policy=PolicySpec(path=tiny_model_dir),
        prompts=[prompts],
        rewards=[RewardSpec(function="ddp_rewards:varied")],
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=5e-3,
    )
    path = os.pathsep.join([str(reward_module(tmp_path / "lib")), os.environ.get("PYTHONPATH", "")])
    result = run_stage(
        "grpo", cfg, LaunchSettings(num_processes=2), tmp_path / "work", env={**ENV, "PYTHONPATH": path}
    )
    assert result.counts["world_size"] == 2 and result.counts["steps"] == 2
    assert (result.adapter / "adapter_model.safetensors").is_file()
