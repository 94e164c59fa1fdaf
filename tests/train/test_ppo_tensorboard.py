"""Our PPO with ``report_to: [tensorboard]``: one real step on the tiny model writes its metrics to the
stage's tensorboard folder (the same numbers as metrics.jsonl), read back with EventAccumulator."""

from __future__ import annotations

import pytest

from rlaif.train.common import read_metrics
from rlaif.train.configs import PolicySpec, PPOConfig
from rlaif.train.ppo import run_ppo


def test_ppo_metrics_reach_tensorboard(tiny_model_dir, tmp_path, toy_prompts, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = PPOConfig(
        output_dir=tmp_path / "ppo",
        policy=PolicySpec(path=tiny_model_dir),
        max_steps=1,
        batch_size=4,
        minibatch_size=4,
        ppo_epochs=1,
        max_completion_length=4,
        save_critic=False,
        report_to=["tensorboard"],
        logging_dir=tmp_path / "board" / "final",
    )
    run_ppo(cfg, prompts=toy_prompts(4), reward_fn=lambda prompts, completions, **_: [1.0] * len(completions))
    (logged,) = read_metrics(cfg.output_dir / "metrics.jsonl")
    acc = EventAccumulator(str(tmp_path / "board" / "final"))
    acc.Reload()
    (event,) = acc.Scalars("train/policy_loss")
    assert event.step == 1 and event.value == pytest.approx(logged["policy_loss"], rel=1e-5)
    assert "train/kl" in acc.Tags()["scalars"]
