"""GRPO and RLOO: one real TRL training step on the tiny model with a reward that runs code in a subprocess.

The reward executes a tiny unit test on each completion in a separate Python process (the way a
sandbox reward does), so the step goes through TRL's reward plumbing with a real program run.
"""

from __future__ import annotations

import subprocess
import sys

import torch
from safetensors.torch import load_file

from rlaif.train.common import read_metrics
from rlaif.train.configs import GRPOConfig, PolicySpec, RLOOConfig
from rlaif.train.grpo import run_grpo, run_rloo
from rlaif.train.rewards import completion_text

UNIT_TEST = "text = {text!r}\nassert len(text) % 2 == {parity}, 'wrong parity'\n"


def subprocess_unit_test_reward(prompts, completions, parity, **_):
    """1.0 when the completion passes the prompt's unit test run by a fresh interpreter, else 0.0."""
    rewards = []
    for completion, want in zip(completions, parity, strict=True):
        program = UNIT_TEST.format(text=completion_text(completion), parity=want)
        proc = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, timeout=30)
        rewards.append(1.0 if proc.returncode == 0 else 0.0)
    return rewards


def _lora_b_norm(adapter_dir) -> float:
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


def test_grpo_step_with_code_execution_reward(tiny_model_dir, toy_prompts, tmp_path):
    prompts = [p.model_copy(update={"metadata": {"parity": i % 2}}) for i, p in enumerate(toy_prompts(4))]
    cfg = GRPOConfig(
        output_dir=tmp_path / "grpo",
        policy=PolicySpec(path=tiny_model_dir),
        prompts=[tmp_path / "unused.jsonl"],
        num_generations=4,
        per_device_batch_size=8,
        max_completion_length=12,
        max_steps=1,
        learning_rate=5e-3,
    )
    result = run_grpo(cfg, prompts=prompts, reward_funcs=[subprocess_unit_test_reward])
    assert result.counts["steps"] == 1
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    print("GRPO step:", {k: line[k] for k in ("reward", "reward_std", "grad_norm", "loss")})
    assert 0.0 < line["reward"] < 1.0  # the programs ran: some passed, some failed
    assert line["reward_std"] > 0 and line["grad_norm"] > 0
    assert "rewards/subprocess_unit_test_reward/mean" in line
    assert _lora_b_norm(result.adapter) > 0  # LoRA B starts at zero: the step changed the adapter
    assert (result.adapter / "tokenizer.json").is_file()


def test_rloo_step_with_code_execution_reward(tiny_model_dir, toy_prompts, tmp_path):
    prompts = [p.model_copy(update={"metadata": {"parity": i % 2}}) for i, p in enumerate(toy_prompts(4))]
    cfg = RLOOConfig(
        output_dir=tmp_path / "rloo",
        policy=PolicySpec(path=tiny_model_dir),
        prompts=[tmp_path / "unused.jsonl"],
        num_generations=4,
        per_device_batch_size=8,
        max_completion_length=12,
        max_steps=1,
        learning_rate=5e-3,
        lora=None,
    )
    result = run_rloo(cfg, prompts=prompts, reward_funcs=[subprocess_unit_test_reward])
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    assert line["grad_norm"] > 0
    assert result.adapter is None and (result.base_model / "model.safetensors").is_file()
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(result.base_model / "model.safetensors"))
    assert any(not torch.equal(start[k], after[k]) for k in start)
