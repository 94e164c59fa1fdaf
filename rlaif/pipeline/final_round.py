"""The final RL round of a run: PPO (ours), GRPO or RLOO (TRL), rewarded by tests, an RM or a judge.

Rewards:
- ``sandbox``: the run's code problems; each rollout is executed against its problem's tests in the
  run's sandbox pool and mapped by ``final.reward_kind`` (binary, fraction, coderl, rltf);
- ``verifier``: the prompts' own verifier (:mod:`rlaif.tasks`), mapped the same way: the sandbox on
  code problems, the instruction checker on prompts that list their ``instructions`` (each rollout is
  checked against its prompt's instructions, passed to the reward as a column; with
  ``final.require_answer`` a rollout that does not answer its request scores 0);
- ``reward_model``: a Bradley-Terry reward model is first trained on every pair the run collected
  (``final/reward_model``), then scores rollouts;
- ``judge``: the run's pointwise judge scores each rollout (mean of its valid judgments; a rollout
  the judge could not score gets ``None``, which the trainers exclude rather than invent a value).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.code.jobs import CODE_STOP, prepare_expected
from rlaif.code.problems import code_prompt
from rlaif.code.rewards import CodeReward, reward_fn
from rlaif.config import RunConfig
from rlaif.errors import ConfigError
from rlaif.judges import load_judge
from rlaif.pipeline.context import RunContext
from rlaif.pipeline.inputs import is_code_run, load_prompt_source
from rlaif.pipeline.judging import final_judge
from rlaif.pipeline.resolve import stage_policy
from rlaif.pipeline.stages import launched_or_local
from rlaif.pipeline.summary import TrainSummary, train_summary
from rlaif.records import ExecutionResult, Message, PromptRecord, read_jsonl, write_jsonl
from rlaif.train.configs import (
    GRPOConfig,
    GRPOOptions,
    PPOConfig,
    PPOOptions,
    RewardModelConfig,
    RewardSpec,
    RLOOConfig,
    RLOOOptions,
)
from rlaif.train.rewards import completion_text, verifier_reward


def reward_spread(executions: Path, reward_kind: str) -> dict[str, set[float]]:
    """Task id -> the distinct rewards its programs earned in a feedback round's executions (a sandbox
    error earns none: it says nothing about the program)."""
    score = reward_fn(reward_kind)
    spread: dict[str, set[float]] = defaultdict(set)
    for result in read_jsonl(executions, ExecutionResult):
        value = score(result)
        if value is not None:
            spread[result.task_id].add(round(value, 9))
    return dict(spread)


def varied_problems(items: list, executions: Path, reward_kind: str) -> tuple[list, dict[str, int]]:
    """``final.prompts: varied``: the problems whose programs earned more than one reward, and counts of
    the rest. A problem whose programs all passed, or all failed alike, is likely to give a group of
    rollouts that score alike, and so no gradient; such groups were 5 of 16 GRPO steps on MBPP."""
    spread = reward_spread(executions, reward_kind)
    kept = [p for p in items if len(spread.get(p.task_id, ())) > 1]
    counts = {
        "prompts": len(kept),
        "prompts_same_reward": sum(len(spread.get(p.task_id, ())) == 1 for p in items),
        "prompts_not_run": sum(p.task_id not in spread for p in items),
    }
    if not kept:
        raise ConfigError(
            f"final.prompts: varied: no problem's programs in {executions} earned different "
            f"final.reward_kind={reward_kind} rewards ({counts['prompts_same_reward']} of {len(items)} "
            f"problems earned one reward, {counts['prompts_not_run']} ran no program); there is nothing "
            "for the round to learn from; use final.prompts: all"
        )
    return kept, counts


def _prompt_records(ctx: RunContext, executions: Path | None) -> tuple[list[PromptRecord], dict, dict]:
    """The prompts trained on, for a code run the problems by task id (the sandbox reward), and the
    counts of ``final.prompts: varied`` (empty for all prompts)."""
    items = load_prompt_source(ctx.cfg.prompts, "prompts")
    counts: dict[str, int] = {}
    if ctx.cfg.final.prompts == "varied":
        if executions is None:
            raise ConfigError(
                "final.prompts: varied needs the last round's sandbox executions, and its feedback "
                "stage wrote none; use final.prompts: all"
            )
        total = len(items)
        items, counts = varied_problems(items, executions, ctx.cfg.final.reward_kind)
        ctx.say(
            f"{PROGRESS_LABEL}: {len(items)} of {total} problems kept, their programs earned different "
            f"rewards in {executions.parent.parent.name}'s feedback ({counts['prompts_same_reward']} "
            f"earned one reward, {counts['prompts_not_run']} ran no program)"
        )
    if is_code_run(ctx.cfg):
        problems = {p.task_id: p for p in items}
        records = [
            PromptRecord(id=p.task_id, messages=code_prompt(p), metadata={"task_id": p.task_id})
            for p in items
        ]
        return records, problems, counts
    return items, {}, counts


def judge_reward(ctx: RunContext):
    """A reward function scoring each rollout with the run's pointwise judge (None: could not judge)."""
    # the run's one judge setting; rlaif validate has checked that it is a pointwise judge
    judge = load_judge(final_judge(ctx.cfg), ctx.judge_engine())

    def judge_score(prompts, completions, **_):
        items = [
            ([Message.model_validate(m) for m in p], completion_text(c))
            for p, c in zip(prompts, completions, strict=True)
        ]
        return [r.mean_score for r in judge.score(items)]

    return judge_score


def _reward_model(ctx: RunContext, stage_dir: Path) -> tuple[Path, dict]:
    """Train the Bradley-Terry reward model on the run's pairs; its path and held-out numbers."""
    from rlaif.train.reward_model import train_reward_model

    pair_files = sorted(ctx.run_dir.glob("round_*/pairs/pairs.jsonl"))
    if not pair_files:
        raise ConfigError("final.reward=reward_model needs pairs from at least one DPO round (rounds >= 1)")
    rm_dir = stage_dir / "reward_model"
    rm_cfg = RewardModelConfig(
        output_dir=rm_dir,
        model=ctx.policy.path,
        pairs=pair_files,
        report_to=ctx.cfg.report_to,
        logging_dir=ctx.cfg.tracking_dir(rm_dir),
    )
    from rlaif.train.progress import TrainingProgress

    label = "final/reward_model"
    local = lambda: train_reward_model(rm_cfg, callbacks=[TrainingProgress(f"  {label}")])  # noqa: E731
    result = launched_or_local(ctx, "reward-model", rm_cfg, stage_dir, label, local)
    info = {
        "heldout_accuracy": result.extra.get("heldout_accuracy"),
        "heldout_pairs": result.counts.get("heldout_pairs"),
        "train_pairs": result.counts.get("train_pairs"),
    }
    return Path(result.merged_model or result.base_model), info


def _task_reward(ctx: RunContext, problems: dict):
    """The task's verifier as a reward: code problems run in the sandbox; other prompts are checked
    against their instructions (compile_run has refused prompts without any)."""
    fin = ctx.cfg.final
    if problems:
        # MBPP+ expected outputs (CodeReward skips this step when it is given a pool)
        prepare_expected(list(problems.values()), ctx.sandbox())
        return CodeReward(problems, fin.reward_kind, pool=ctx.sandbox())
    if fin.reward == "sandbox":
        raise ConfigError("final.reward=sandbox needs code problems as the run's prompts")
    from rlaif.tasks.instruction import InstructionTask

    return verifier_reward(InstructionTask(require_answer=fin.require_answer), fin.reward_kind)


def _reward(ctx: RunContext, stage_dir: Path, problems: dict) -> tuple:
    """(reward function or None, reward model path or None, reward model numbers or None)."""
    fin = ctx.cfg.final
    if fin.reward in ("sandbox", "verifier"):
        return _task_reward(ctx, problems), None, None
    if fin.reward == "judge":
        return judge_reward(ctx), None, None
    return (None, *_reward_model(ctx, stage_dir))


PROGRESS_LABEL = "  final/train"
"""The final round's progress line is named after its stage, as the DPO and SFT stages' are."""


def _ppo(options, records: list[PromptRecord], reward_fn):
    from rlaif.train.ppo import run_ppo

    return run_ppo(options, prompts=records, reward_fn=reward_fn, label=PROGRESS_LABEL)


def _grpo(options, records: list[PromptRecord], reward_fn):
    from rlaif.train.grpo import run_grpo

    funcs = [reward_fn] if reward_fn else None
    return run_grpo(options, prompts=records, reward_funcs=funcs, label=PROGRESS_LABEL)


def _rloo(options, records: list[PromptRecord], reward_fn):
    from rlaif.train.grpo import run_rloo

    funcs = [reward_fn] if reward_fn else None
    return run_rloo(options, prompts=records, reward_funcs=funcs, label=PROGRESS_LABEL)


@dataclass(frozen=True)
class FinalTrainer:
    """One final-round kind: its options model (what ``final.options`` may set), its config model (the
    options plus the policy and prompt files the stage gives it), its trainer in this process (config,
    in-memory prompts, reward function or None), and whether its config names a reward model in a list
    (TRL's ``rewards``) or alone (our PPO's ``reward``). In a run, ``final.reward`` decides the reward,
    so :attr:`reward_keys` of ``final.options`` are the run's: the stage would replace or ignore them."""

    options: type
    config: type
    train: Callable[[Any, list[PromptRecord], Any], Any]
    many_rewards: bool

    @property
    def reward_keys(self) -> tuple[str, ...]:
        """The options naming the reward (and weighting several), which a run sets itself."""
        return ("rewards", "reward_weights") if self.many_rewards else ("reward",)

    def reward_model_options(self, spec: RewardSpec) -> dict:
        return {"rewards": [spec]} if self.many_rewards else {"reward": spec}

    def local(self, options, records: list[PromptRecord], reward_fn) -> Callable[[], Any]:
        return lambda: self.train(options, records, reward_fn)


FINAL_TRAINERS = {
    "ppo": FinalTrainer(PPOOptions, PPOConfig, _ppo, many_rewards=False),
    "grpo": FinalTrainer(GRPOOptions, GRPOConfig, _grpo, many_rewards=True),
    "rloo": FinalTrainer(RLOOOptions, RLOOConfig, _rloo, many_rewards=True),
}
"""Final kind -> trainer; the stage registry reads the options and config models from here."""


def final_option_defaults(cfg: RunConfig) -> dict[str, Any]:
    """The ``final.options`` defaults that follow from the reward: a reward that runs the code (sandbox,
    or verifier on code problems) stops each rollout at the end of its first code block, kept, as the
    feedback stage samples code candidates, so no step samples or trains on the prose after the code
    that the reward never looks at. A user's ``stop_strings`` (``[]``: none) wins."""
    fin = cfg.final
    runs_code = fin.reward == "sandbox" or (fin.reward == "verifier" and is_code_run(cfg))
    if runs_code and "stop_strings" in FINAL_TRAINERS[fin.kind].options.model_fields:
        return {"stop_strings": list(CODE_STOP)}
    return {}


def run_final_round(ctx: RunContext, stage_dir: Path, executions: Path | None = None) -> TrainSummary:
    """Train the final round on the run's prompts with the resolved ``final.options``; ``executions``:
    the last round's sandbox executions, which ``final.prompts: varied`` selects the problems by."""
    fin, trainer = ctx.cfg.final, FINAL_TRAINERS[ctx.cfg.final.kind]
    records, problems, prompt_counts = _prompt_records(ctx, executions)
    reward_fn, rm_path, rm_info = _reward(ctx, stage_dir, problems)
    prompts_file = stage_dir / "prompts.jsonl"  # the exact prompts trained on, kept with the stage
    write_jsonl(prompts_file, records)
    forced: dict = {"policy": stage_policy(ctx.policy), "prompts": [prompts_file]}
    if rm_path is not None:
        forced.update(trainer.reward_model_options(RewardSpec(reward_model=rm_path)))
    options = ctx.run.runtime(
        "final.options", defaults={"output_dir": stage_dir, "seed": ctx.cfg.seed}, forced=forced
    )
    # under accelerate launch (compile_run allows it for a reward model only: a path in the stage's
    # YAML), each process reads the prompts file written above and loads the reward model itself
    result = launched_or_local(
        ctx, fin.kind, options, stage_dir, "final/train", trainer.local(options, records, reward_fn)
    )
    summary = train_summary(result)
    summary.counts.update(prompt_counts)
    summary.reward_model = rm_info
    return summary
