"""Compile a run config into a :class:`RunPlan` before any stage runs.

Why: a wrong combination used to surface mid-run, after hours of feedback and training (a sandbox
reward on text prompts, an engine that cannot serve the round's adapters, a soft-label clamp checked
only when the first chunk was judged). :func:`compile_run` is the one place every cross-field rule is
checked; ``rlaif validate``, ``rlaif run`` and :class:`~rlaif.pipeline.runner.Runner` (the Python API)
all call it, so none of them can start a run the others would refuse.

Guarantees: every option block is validated once (:func:`resolve`); the data
files are read as the stages will read them; each refusal is a :class:`~rlaif.errors.ConfigError`
naming the file and the key; the final round's reward keys (``final.options.reward``, ``rewards``,
``reward_weights``) are refused, since ``final.reward`` decides them; no model is loaded and nothing
is generated. The plan records the LoRA rank the policy engine must serve, so the engine is started
able to load every adapter the run trains.
Non-guarantees: a model built during the run (``policy.build_tiny``) is checked when it exists; a
plug-in source's own run-time checks are its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.config import RunConfig
from rlaif.errors import ConfigError
from rlaif.pipeline.final_round import FINAL_TRAINERS
from rlaif.pipeline.inputs import is_code_run, load_prompt_source
from rlaif.pipeline.judging import check_judges
from rlaif.pipeline.preflight import check_context_lengths, read_inputs
from rlaif.pipeline.resolve import (
    ResolvedRun,
    check_text_scoring,
    lora_rank,
    resolve_run,
    serves_adapters,
    stage_policy,
)
from rlaif.pipeline.stage_kinds import run_blocks
from rlaif.tasks.rewards import verdict_reward


@dataclass(frozen=True)
class RunPlan:
    """A run that passed every check: the resolved blocks, the LoRA rank its policy engine serves
    (None: no LoRA) and what was read from each data file (for notes about skipped records)."""

    run: ResolvedRun
    lora_rank: int | None
    inputs: dict[str, dict] = field(default_factory=dict)

    @property
    def config(self) -> RunConfig:
        return self.run.config


def resolve(cfg: RunConfig) -> ResolvedRun:
    """Every option block of ``cfg`` validated against its stage's model, once: each stage kind of the
    registry (:mod:`rlaif.pipeline.stage_kinds`) names its blocks."""
    _final_reward_is_the_runs(cfg)
    run = resolve_run(cfg, run_blocks(cfg))
    check_text_scoring(run)
    return run


def compile_run(cfg: RunConfig) -> RunPlan:
    """Every check a run needs before its first stage; raises :class:`ConfigError` on the first problem."""
    run = resolve(cfg)
    where = cfg.source_file or "config"
    _check_policy_path(cfg, where)
    check_context_lengths(cfg)
    check_judges(cfg)
    inputs = read_inputs(cfg)
    for rule in RULES:
        rule(run, where)
    merged = cfg.engine.adapter_serving == "merged"  # the engine then serves no adapter itself
    return RunPlan(run=run, lora_rank=None if merged else lora_rank(run), inputs=inputs)


def _final_reward_is_the_runs(cfg: RunConfig) -> None:
    """``final.reward`` decides what rewards the final round: a reward model the run trains replaces
    the trainer's reward keys, the sandbox, verifier or judge is passed as a function that PPO takes
    instead of its ``reward`` and GRPO/RLOO add to their ``rewards``. Refused before validation, so a
    user is not asked to fix a key that has to go."""
    if cfg.final.kind == "none":
        return
    taken = [k for k in FINAL_TRAINERS[cfg.final.kind].reward_keys if k in cfg.final.options]
    if taken:
        raise ConfigError(
            f"{cfg.source_file or 'config'}: 'final.options.{taken[0]}' is decided by the run (the final "
            f"round is rewarded by final.reward={cfg.final.reward}); remove it and choose the reward with "
            "final.reward (sandbox, verifier, reward_model or judge)"
        )


def _check_policy_path(cfg: RunConfig, where: str) -> None:
    local = cfg.policy.path.startswith(("/", ".", "~"))  # otherwise a hub name, resolved by vLLM/HF
    if local and not cfg.policy.build_tiny and not Path(cfg.policy.path).expanduser().exists():
        raise ConfigError(f"{where}: 'policy.path': model directory not found: {cfg.policy.path}")


# -- cross-field rules: each (run, where) -> None or ConfigError ---------------------------------------


def _sandbox_reward_needs_code(run: ResolvedRun, where: str) -> None:
    cfg = run.config
    if cfg.final.kind != "none" and cfg.final.reward == "sandbox" and not is_code_run(cfg):
        raise ConfigError(
            f"{where}: 'final.reward': sandbox rewards run code problems' tests, but the run's prompts are "
            f"{cfg.prompts.kind} text prompts; use final.reward=verifier (prompts listing their instructions), "
            "judge or reward_model, or code prompts"
        )


def _verifier_reward_needs_a_verifier(run: ResolvedRun, where: str) -> None:
    """``final.reward: verifier`` checks each rollout with the prompts' own verifier: the sandbox for
    code problems, the instruction checker for prompts that list their instructions. A prompt with
    neither would get a reward that says nothing, so the run is refused."""
    fin = run.config.final
    if fin.kind == "none":
        return
    if fin.require_answer and (fin.reward != "verifier" or is_code_run(run.config)):
        raise ConfigError(
            f"{where}: 'final.require_answer' applies to final.reward=verifier on instruction prompts; "
            f"this run's final reward is {fin.reward}"
            + (" on code problems" if fin.reward == "verifier" else "")
        )
    if fin.reward not in ("sandbox", "verifier"):
        return
    try:
        verdict_reward(fin.reward_kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}: 'final.reward_kind': {exc}") from None
    if fin.reward == "sandbox" or is_code_run(run.config):
        return
    prompts = load_prompt_source(run.config.prompts, "prompts")
    missing = [str(p.id) for p in prompts if not getattr(p, "metadata", {}).get("instructions")]
    if missing:
        raise ConfigError(
            f"{where}: 'final.reward': verifier rewards need prompts a verifier can check (code "
            f"problems, or prompts listing their 'instructions'); {len(missing)} of {len(prompts)} "
            f"prompts list no instructions (first: {missing[0]}); use final.reward=judge or reward_model"
        )


def _varied_prompts_need_recorded_executions(run: ResolvedRun, where: str) -> None:
    """``final.prompts: varied`` keeps the problems whose programs in the last round's feedback earned
    different rewards, read from that feedback's sandbox executions: it needs a DPO round whose source
    records them, and a final reward computed the same way (the sandbox)."""
    from rlaif.feedback.registry import describe

    cfg = run.config
    if cfg.final.kind == "none" or cfg.final.prompts != "varied":
        return
    problem = None
    if cfg.rounds < 1:
        problem = "this run has no DPO round (rounds: 0) whose feedback could tell"
    elif "executions" not in describe(cfg.feedback.source).writes:
        problem = f"feedback source {cfg.feedback.source!r} runs no programs in the sandbox (rlcf does)"
    elif cfg.final.reward not in ("sandbox", "verifier") or not is_code_run(cfg):
        problem = f"final.reward={cfg.final.reward} is not the sandbox reward the feedback's executions give"
    if problem:
        raise ConfigError(
            f"{where}: 'final.prompts': varied keeps the problems whose programs in the last round's "
            f"feedback earned different sandbox rewards, but {problem}; use final.prompts: all"
        )


def _run_rollouts_on_hf(run: ResolvedRun, where: str) -> None:
    options = run.blocks.get("final.options")
    if getattr(options, "rollout", None) == "engine":
        raise ConfigError(
            f"{where}: 'final.options.rollout': 'engine' needs a second vLLM engine beside the run's "
            "policy engine, which a run does not start; use rollout: hf (or `rlaif train ppo` for engine "
            "rollouts)"
        )


def _openai_serves_no_trained_policy(run: ResolvedRun, where: str) -> None:
    cfg = run.config
    if cfg.engine.kind in ("openai", "ray") and serves_adapters(run):
        who, fix = "an OpenAI-compatible server", "rounds: 0 with final.kind: none and no policy.adapter"
        if cfg.engine.kind == "ray":  # Ray replicas restart on new full weights, not on adapters
            who, fix = "Ray replicas", "full-weight training (dpo.lora: null, no policy.adapter)"
        raise ConfigError(
            f"{where}: 'engine.kind': {who} cannot serve the LoRA adapters this run trains (or starts "
            f"from) and evaluates; use engine.kind=vllm, or {fix}"
        )


def _merged_serving_serves_one_adapter(run: ResolvedRun, where: str) -> None:
    """``engine.adapter_serving: merged`` starts the policy engine without LoRA on the round's adapter
    merged into its base, so an option naming another adapter to serve per request (RL-CAI's
    ``judge_adapter``) cannot work; and a separate judge serves one fixed model, never a round's
    adapter, so the key means nothing in ``judge.engine``."""
    cfg = run.config
    if cfg.judge.engine is not None and cfg.judge.engine.adapter_serving != "lora":
        raise ConfigError(
            f"{where}: 'judge.engine.adapter_serving': a separate judge serves one fixed model, not the "
            "round's adapter; set adapter_serving in the policy's 'engine' block"
        )
    if cfg.engine.adapter_serving != "merged":
        return
    for key, block in run.blocks.items():
        named = [k for k, v in dict(block).items() if k.endswith("_adapter") and v is not None]
        if named:
            raise ConfigError(
                f"{where}: '{key}.{named[0]}' serves its own adapter per request, which needs an engine "
                "with LoRA; with engine.adapter_serving: merged the policy engine serves the round's "
                f"adapter merged, without LoRA; use engine.adapter_serving: lora or remove {named[0]}"
            )


def _source_self_checks(run: ResolvedRun, where: str) -> None:
    """A source config's own consistency checks that it otherwise makes when the first chunk runs."""
    for key, block in run.blocks.items():
        for check in SELF_CHECKS:
            method = getattr(block, check, None)
            if callable(method):
                try:
                    method()
                except ConfigError as exc:
                    raise ConfigError(f"{where}: '{key}': {exc}") from None


def _trainers_can_start_from_the_policy(run: ResolvedRun, where: str) -> None:
    """A training block's own check of the run's starting policy (full fine-tuning of an adapter),
    which its trainer config makes with the policy a stage gives it: made now, with the run's."""
    start = stage_policy(run.config.policy)
    for key in sorted(run.training):
        check = getattr(run.blocks[key], "check_start", None)
        if callable(check):
            try:
                check(start)
            except ValueError as exc:
                raise ConfigError(f"{where}: '{key}': {exc}") from None


def _train_launch(run: ResolvedRun, where: str) -> None:
    """The ``train:`` block: an accelerate config that exists, and a final RL round over several
    processes only with a reward every process can rebuild from the stage's YAML (a reward model's
    path); the sandbox pool and the judge's engine live in the pipeline's process."""
    cfg = run.config
    launch = cfg.train
    if launch.accelerate_config is not None and not Path(launch.accelerate_config).expanduser().is_file():
        raise ConfigError(f"{where}: 'train.accelerate_config': file not found: {launch.accelerate_config}")
    if launch.distributed and cfg.final.kind != "none" and cfg.final.reward != "reward_model":
        raise ConfigError(
            f"{where}: 'train': a final {cfg.final.kind} round with a {cfg.final.reward} reward runs in one "
            "process only (the reward lives in the pipeline's process); use final.reward: reward_model, "
            "or train.num_processes: 1 and no accelerate_config, or final.kind: none and launch the final "
            "round by hand (`accelerate launch -m rlaif.cli train ppo` with a module:function reward)"
        )


SELF_CHECKS = ("effective_clamp",)  # rl_cai's soft-label clamp bounds
RULES: list[Any] = [
    _sandbox_reward_needs_code,
    _verifier_reward_needs_a_verifier,
    _varied_prompts_need_recorded_executions,
    _run_rollouts_on_hf,
    _openai_serves_no_trained_policy,
    _merged_serving_serves_one_adapter,
    _source_self_checks,
    _trainers_can_start_from_the_policy,
    _train_launch,
]
