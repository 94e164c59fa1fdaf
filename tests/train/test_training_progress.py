"""Progress lines of the final-round trainers, captured from real tiny runs: PPO (ours) and GRPO
(TRL's trainer with our TrainingProgress callback) print steps, a throughput in tok/s and an ETA."""

from __future__ import annotations

import re

from rlaif.train.configs import GRPOConfig, PolicySpec, PPOConfig
from rlaif.train.grpo import run_grpo
from rlaif.train.ppo import run_ppo
from rlaif.train.rewards import completion_text


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _tok_per_s(line: str) -> float:
    match = re.search(r"(\d+) tok/s", line)
    assert match, line
    return float(match.group(1))


def test_ppo_prints_iterations_throughput_and_eta(tiny_model_dir, tmp_path, toy_prompts, capsys):
    cfg = PPOConfig(
        output_dir=tmp_path / "ppo",
        policy=PolicySpec(path=tiny_model_dir),
        max_steps=3,
        batch_size=4,
        minibatch_size=4,
        max_completion_length=8,
        save_critic=False,
    )
    run_ppo(cfg, prompts=toy_prompts(4), reward_fn=lambda prompts, completions, **_: [0.5] * len(completions))
    lines = _lines(capsys.readouterr().err, "ppo: ")
    assert lines[0].startswith("ppo: 1/3 iterations, ") and "ETA " in lines[0], lines
    assert lines[-1].startswith("ppo: 3/3 iterations, ") and "ETA" not in lines[-1], lines
    assert all("score 0.500" in line and _tok_per_s(line) > 0 for line in lines), lines


def test_grpo_prints_steps_loss_throughput_and_eta(tiny_model_dir, tmp_path, toy_prompts, capsys):
    def odd_length(prompts, completions, **_):
        return [float(len(completion_text(c)) % 2) for c in completions]

    cfg = GRPOConfig(
        output_dir=tmp_path / "grpo",
        policy=PolicySpec(path=tiny_model_dir),
        prompts=[tmp_path / "unused.jsonl"],
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=8,
        max_steps=2,
        logging_steps=1,
    )
    run_grpo(cfg, prompts=toy_prompts(4), reward_funcs=[odd_length])
    lines = _lines(capsys.readouterr().err, "grpo: ")
    assert lines[0].startswith("grpo: 1/2 steps, ") and "ETA " in lines[0], lines
    assert lines[-1].startswith("grpo: 2/2 steps, "), lines
    assert "loss " in lines[-1] and _tok_per_s(lines[-1]) > 0, lines  # from TRL's num_tokens log
