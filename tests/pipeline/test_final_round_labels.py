"""The final round's reward model shows its progress under its stage's name (``final/reward_model``),
as every other training stage of a run does; it used to train with no progress line at all. The real
GRPO and PPO final rounds' lines are checked in test_instructions_pipeline.py."""

from __future__ import annotations

from pathlib import Path

import rlaif.train.reward_model as reward_model
from rlaif.pipeline.context import Policy, RunContext
from rlaif.pipeline.final_round import _reward_model
from rlaif.pipeline.resolve import ResolvedRun
from rlaif.train.common import StageResult


def test_the_final_rounds_reward_model_progress_is_named_after_its_stage(tmp_path, run_config, monkeypatch):
    cfg = run_config(final={"kind": "ppo", "reward": "reward_model"})
    ctx = RunContext(
        run=ResolvedRun(config=cfg, blocks={}, user_keys={}),
        run_dir=tmp_path / "run",
        policy=Policy(Path(cfg.policy.path)),
    )
    pairs = ctx.run_dir / "round_1" / "pairs" / "pairs.jsonl"
    pairs.parent.mkdir(parents=True)
    pairs.write_text("")
    seen = []

    def fake_train(rm_cfg, *, callbacks=None):
        seen.append([c.description for c in callbacks or []])
        return StageResult(stage="reward_model", output_dir=Path(rm_cfg.output_dir), base_model=Path("rm"))

    monkeypatch.setattr(reward_model, "train_reward_model", fake_train)
    path, _ = _reward_model(ctx, ctx.run_dir / "final" / "train")
    assert path == Path("rm") and seen == [["  final/reward_model"]]
