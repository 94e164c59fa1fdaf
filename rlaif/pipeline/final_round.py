"""The final RL round of a run: PPO (ours), GRPO or RLOO (TRL), rewarded by tests, an RM or a judge.

Rewards:
- ``sandbox``: the run's code problems; each rollout is executed against its problem's tests in the
  run's sandbox pool and mapped by ``final.reward_kind`` (binary, fraction, coderl, rltf);
- ``reward_model``: a Bradley-Terry reward model is first trained on every pair the run collected
  (``final/reward_model``), then scores rollouts;
- ``judge``: the run's pointwise judge scores each rollout (mean of its valid judgments; a rollout
  the judge could not score gets ``None``, which the trainers exclude rather than invent a value).
"""

from __future__ import annotations

from pathlib import Path

from rlaif.config import validate_stage_options
from rlaif.errors import ConfigError
from rlaif.pipeline.context import RunContext
from rlaif.records import Message, PromptRecord, write_jsonl


def _prompt_records(ctx: RunContext) -> tuple[list[PromptRecord], dict]:
    from rlaif.pipeline.evaluation import code_prompt
    from rlaif.pipeline.inputs import load_prompt_source
    from rlaif.pipeline.stages import CODE_SOURCES

    items = load_prompt_source(ctx.cfg.prompts, "prompts")
    if ctx.cfg.feedback.source in CODE_SOURCES or ctx.cfg.prompts.kind in ("code", "demo_code"):
        problems = {p.task_id: p for p in items}
        records = [
            PromptRecord(id=p.task_id, messages=code_prompt(p), metadata={"task_id": p.task_id})
            for p in items
        ]
        return records, problems
    return items, {}


def judge_reward(ctx: RunContext):
    from rlaif.judges import load_judge
    from rlaif.train.rewards import completion_text

    # the run's one judge setting; rlaif validate has checked that it is a pointwise judge
    judge = load_judge(ctx.cfg.judge.template or "self_rewarding_rubric", ctx.judge_engine())

    def judge_score(prompts, completions, **_):
        items = [
            ([Message.model_validate(m) for m in p], completion_text(c))
            for p, c in zip(prompts, completions, strict=True)
        ]
        return [r.mean_score for r in judge.score(items)]

    return judge_score


def _reward_model(ctx: RunContext, stage_dir: Path) -> tuple[Path, dict]:
    """Train the Bradley-Terry reward model on the run's pairs; its path and held-out numbers."""
    from rlaif.train.configs import RewardModelConfig
    from rlaif.train.reward_model import run_reward_model

    pair_files = sorted(ctx.run_dir.glob("round_*/pairs/pairs.jsonl"))
    if not pair_files:
        raise ConfigError("final.reward=reward_model needs pairs from at least one DPO round (rounds >= 1)")
    rm_cfg = RewardModelConfig(output_dir=stage_dir / "reward_model", model=ctx.policy.path, pairs=pair_files)
    result = run_reward_model(rm_cfg)
    info = {
        "heldout_accuracy": result.extra.get("heldout_accuracy"),
        "heldout_pairs": result.counts.get("heldout_pairs"),
        "train_pairs": result.counts.get("train_pairs"),
    }
    return Path(result.merged_model or result.base_model), info


def run_final_round(ctx: RunContext, stage_dir: Path) -> dict:
    from rlaif.pipeline.stages import _train_summary
    from rlaif.train.configs import GRPOConfig, PPOConfig, RLOOConfig

    fin = ctx.cfg.final
    file = ctx.cfg.source_file or "config"
    records, problems = _prompt_records(ctx)
    policy = {
        "path": str(ctx.policy.path),
        "adapter": str(ctx.policy.adapter) if ctx.policy.adapter else None,
    }
    reward_fn = None
    rm_path = None
    rm_info: dict | None = None
    if fin.reward == "sandbox":
        from rlaif.code.rewards import CodeReward

        if not problems:
            raise ConfigError("final.reward=sandbox needs code problems as the run's prompts")
        from rlaif.code.jobs import prepare_expected

        prepare_expected(
            list(problems.values()), ctx.sandbox()
        )  # MBPP+ outputs (CodeReward skips it for a given pool)
        reward_fn = CodeReward(problems, fin.reward_kind, pool=ctx.sandbox())
    elif fin.reward == "judge":
        reward_fn = judge_reward(ctx)
    else:
        rm_path, rm_info = _reward_model(ctx, stage_dir)
    prompts_file = stage_dir / "prompts.jsonl"  # the exact prompts trained on, kept with the stage
    write_jsonl(prompts_file, records)
    options = {
        "output_dir": str(stage_dir),
        "seed": ctx.cfg.seed,
        **fin.options,
        "policy": policy,
        "prompts": [str(prompts_file)],
    }
    if fin.kind == "ppo":
        from rlaif.train.ppo import PPOTrainer

        if rm_path is not None:
            options["reward"] = {"reward_model": str(rm_path)}
        ppo_cfg = validate_stage_options(PPOConfig, options, "final.options", file)
        result = PPOTrainer(ppo_cfg, prompts=records, reward_fn=reward_fn).train()
    else:
        from rlaif.train.grpo import run_grpo, run_rloo

        if rm_path is not None:
            options["rewards"] = [{"reward_model": str(rm_path)}]
        model = GRPOConfig if fin.kind == "grpo" else RLOOConfig
        group_cfg = validate_stage_options(model, options, "final.options", file)
        runner = run_grpo if fin.kind == "grpo" else run_rloo
        result = runner(group_cfg, prompts=records, reward_funcs=[reward_fn] if reward_fn else None)
    summary = _train_summary(result)
    if rm_info is not None:
        summary["reward_model"] = rm_info
    return summary
