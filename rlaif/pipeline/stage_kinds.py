"""The stage registry: what each kind of pipeline stage is, in one place.

Each :class:`StageKind` declares its summary model, its option blocks (validated once by
:mod:`rlaif.pipeline.resolve`), its spec (the config it hashes, the input files it hashes, its body),
its health check, its report section and whether it hands the next stages a new policy. The runner,
the health checks and the report look a planned stage's kind up here and never branch on a source or
trainer name. :func:`plan_stages` lays the kinds out in run order; the run-folder layout
(``round_<k>/<stage>``, ``final/...``) and the config hashes are those of earlier versions, so a run
directory written before resumes and skips exactly as it did.

Adding a training stage: its trainer (``rlaif/train``), its config block (:class:`rlaif.config.RunConfig`)
and its kind here (as the SFT stage does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.config import RunConfig
from rlaif.config.health import HealthConfig
from rlaif.pairs import PairFilterConfig
from rlaif.pipeline import health, report_sections, stages
from rlaif.pipeline.context import RunContext
from rlaif.pipeline.evaluation import evaluate_policy
from rlaif.pipeline.feedback_stage import feedback
from rlaif.pipeline.final_round import FINAL_TRAINERS, final_option_defaults, run_final_round
from rlaif.pipeline.manifest import fingerprint_dir
from rlaif.pipeline.resolve import Block, source_block, stage_policy
from rlaif.pipeline.summary import (
    BuildSummary,
    EvalSummary,
    FeedbackSummary,
    PairsSummary,
    StageSummary,
    TrainSummary,
    train_summary,
)
from rlaif.train.configs import DPOConfig, DPOOptions

StageBody = Callable[[Path], StageSummary]
StageSpec = tuple[Any, dict[str, Path | str | None], StageBody]


@dataclass(frozen=True)
class PlannedStage:
    """One stage of a run: its directory name (``round_2/feedback``), its kind, its round (0 before
    the DPO rounds, ``rounds + 1`` for the final round)."""

    name: str
    kind: str
    round: int

    @property
    def group(self) -> str:
        return self.name.partition("/")[0]


@dataclass(frozen=True)
class StageCall:
    """What a kind's spec sees: the run, the planned stage and the summaries of the stages before it."""

    ctx: RunContext
    stage: PlannedStage
    summaries: Mapping[str, StageSummary]

    @property
    def cfg(self) -> RunConfig:
        return self.ctx.cfg

    def output(self, stage: str, name: str) -> Path | None:
        """An output file of an earlier stage (None: that stage did not write it)."""
        value = getattr(self.summaries[stage].outputs, name)
        return Path(value) if value else None

    def policy_inputs(self) -> dict[str, Path | str | None]:
        # The base model is fingerprinted (names, sizes, mtimes: hashing GBs of weights per stage would
        # cost minutes); adapters are small and hashed by content.
        policy = self.ctx.policy
        return {"policy": fingerprint_dir(policy.path), "adapter": policy.adapter}


def _no_check(stage: str, summary: dict, cfg: HealthConfig) -> None:
    return None


def _no_blocks(cfg: RunConfig) -> dict[str, Block]:
    return {}


@dataclass(frozen=True)
class StageKind:
    summary: type[StageSummary]
    spec: Callable[[StageCall], StageSpec]
    check: Callable[[str, dict, HealthConfig], None] = _no_check
    report: Callable[[dict, str, dict, Path], None] = report_sections.no_section
    trains: bool = False
    blocks: Callable[[RunConfig], dict[str, Block]] = _no_blocks


# -- inputs and evaluation ----------------------------------------------------------------------------


def _build_spec(call: StageCall) -> StageSpec:
    cfg = call.cfg
    return cfg.policy.model_dump(mode="json"), {}, lambda d: stages.build_policy(cfg, d)


def _eval_spec(call: StageCall) -> StageSpec:
    """Evaluation after round ``k`` (0: the starting policy), compared with the evaluation before it."""
    ctx, k, run_dir = call.ctx, call.stage.round, call.ctx.run_dir
    label = "final" if call.stage.group == "final" else f"round {k}"
    eval_cfg = {"eval": call.cfg.eval.model_dump(mode="json"), "seed": call.cfg.seed}
    if k == 0:
        return eval_cfg, call.policy_inputs(), lambda d: evaluate_policy(ctx, d, 0, None, label)
    previous = run_dir / f"round_{k - 1}" / "eval"  # final: after the last DPO round
    inputs = {**call.policy_inputs(), "previous": previous / "samples.jsonl"}
    start = None
    if k >= 2:  # round 1's previous evaluation is the start already
        start = run_dir / "round_0" / "eval"
        inputs["start"] = start / "samples.jsonl"
    return eval_cfg, inputs, lambda d: evaluate_policy(ctx, d, k, previous, label, start)


# -- a DPO round: feedback -> pairs -> train --------------------------------------------------------


def _feedback_spec(call: StageCall) -> StageSpec:
    cfg, k = call.cfg, call.stage.round
    fb_cfg = {
        "feedback": cfg.feedback.model_dump(mode="json"),
        "prompts": cfg.prompts.model_dump(mode="json"),
        "judge": cfg.judge.model_dump(mode="json"),
        "seed": cfg.seed,
        "round": k,
    }
    body = lambda d: feedback(call.ctx, d, k, cfg.feedback, "feedback.options")  # noqa: E731
    return fb_cfg, call.policy_inputs(), body


def _pairs_spec(call: StageCall) -> StageSpec:
    pairs_in = call.output(f"{call.stage.group}/feedback", "pairs")
    body = lambda d: stages.filter_pairs(call.ctx, d, pairs_in)  # noqa: E731
    return call.cfg.pairs.model_dump(mode="json"), {"pairs": pairs_in}, body


def _dpo_spec(call: StageCall) -> StageSpec:
    pairs_file = call.output(f"{call.stage.group}/pairs", "pairs")
    inputs = {"pairs": pairs_file, **call.policy_inputs()}
    body = lambda d: stages.train_dpo(call.ctx, d, pairs_file, round_index=call.stage.round)  # noqa: E731
    return {"dpo": call.cfg.dpo, "seed": call.cfg.seed}, inputs, body


def _round_blocks(cfg: RunConfig) -> dict[str, Block]:
    first = cfg.run_dir() / "round_1"
    return {
        "feedback.options": source_block(cfg, cfg.feedback, "feedback.options"),
        "pairs.options": Block(PairFilterConfig, cfg.pairs.options),
        "dpo": Block(
            DPOOptions,
            cfg.dpo,
            defaults={"output_dir": str(first / "train"), "seed": cfg.seed + 1},
            config=DPOConfig,
            trains=cfg.rounds > 0,
        ),
    }


# -- the final RL round -------------------------------------------------------------------------------


def _final_spec(call: StageCall) -> StageSpec:
    cfg = call.cfg
    # options added later are left out at their defaults, so runs finished before they existed still
    # resume past this stage
    unset = {"require_answer"} if not cfg.final.require_answer else set()
    inputs, executions = call.policy_inputs(), None
    if cfg.final.prompts == "varied":
        executions = call.output(f"round_{cfg.rounds}/feedback", "executions")
        inputs["executions"] = executions
    else:
        unset.add("prompts")
    config = {"final": cfg.final.model_dump(mode="json", exclude=unset), "seed": cfg.seed}
    return config, inputs, lambda d: run_final_round(call.ctx, d, executions)


def _final_blocks(cfg: RunConfig) -> dict[str, Block]:
    if cfg.final.kind == "none":
        return {}
    stage_dir = cfg.run_dir() / "final" / "train"
    trainer = FINAL_TRAINERS[cfg.final.kind]
    block = Block(
        trainer.options,
        cfg.final.options,
        defaults={"output_dir": str(stage_dir), "seed": cfg.seed, **final_option_defaults(cfg)},
        config=trainer.config,
        trains=True,
    )
    return {"final.options": block}


# -- SFT before the DPO rounds (SL-CAI's revisions) -----------------------------------------------------


def _sft_feedback_spec(call: StageCall) -> StageSpec:
    cfg, fb = call.cfg, call.cfg.sft.feedback
    config = {"feedback": fb.model_dump(mode="json"), "prompts": cfg.prompts.model_dump(mode="json")}
    body = lambda d: feedback(call.ctx, d, 0, fb, "sft.feedback.options")  # noqa: E731
    return {**config, "seed": cfg.seed}, call.policy_inputs(), body


def _sft_spec(call: StageCall) -> StageSpec:
    records = call.output("sft/feedback", "sft")
    inputs = {"records": records, **call.policy_inputs()}
    return (
        {"sft": call.cfg.sft.options, "seed": call.cfg.seed},
        inputs,
        lambda d: _train_sft(call.ctx, d, records),
    )


def _train_sft(ctx: RunContext, stage_dir: Path, records: Path | None) -> TrainSummary:
    """SFT on the source's records, from the current policy (kept as is when there is no record)."""
    from rlaif.feedback.result import SFTRecord
    from rlaif.records import read_jsonl

    rows = read_jsonl(records, SFTRecord) if records else []
    if not rows:
        ctx.say("[sft/train] the source wrote no SFT records: the policy is kept as it is")
        return TrainSummary(counts={"records": 0, "steps": 0}, skipped="no records")
    sft_cfg = ctx.run.runtime(
        "sft.options",
        defaults={"output_dir": stage_dir, "seed": ctx.cfg.seed},
        forced={"policy": stage_policy(ctx.policy), "records": [records]},
    )
    from rlaif.train.progress import TrainingProgress
    from rlaif.train.sft import run_sft

    local = lambda: run_sft(sft_cfg, records=rows, callbacks=[TrainingProgress("  sft/train")])  # noqa: E731
    return train_summary(stages.launched_or_local(ctx, "sft", sft_cfg, stage_dir, "sft/train", local))


def _sft_blocks(cfg: RunConfig) -> dict[str, Block]:
    if cfg.sft is None:
        return {}
    from rlaif.train.sft import SFTConfig, SFTOptions

    block = Block(
        SFTOptions,
        cfg.sft.options,
        defaults={"output_dir": str(cfg.run_dir() / "sft" / "train"), "seed": cfg.seed},
        config=SFTConfig,
        trains=True,
    )
    fb_block = source_block(cfg, cfg.sft.feedback, "sft.feedback.options")
    return {"sft.feedback.options": fb_block, "sft.options": block}


# -- the registry and the plan --------------------------------------------------------------------------

_feedback_report = report_sections.feedback_section
_train_report = report_sections.train_section
KINDS: dict[str, StageKind] = {
    "build": StageKind(BuildSummary, _build_spec),
    "eval": StageKind(EvalSummary, _eval_spec, health.check_eval, report_sections.eval_section),
    "sft_feedback": StageKind(
        FeedbackSummary, _sft_feedback_spec, health.check_feedback, _feedback_report, blocks=_sft_blocks
    ),
    "sft": StageKind(TrainSummary, _sft_spec, report=_train_report, trains=True),
    "feedback": StageKind(FeedbackSummary, _feedback_spec, health.check_feedback, _feedback_report),
    "pairs": StageKind(PairsSummary, _pairs_spec, health.check_pairs, report_sections.pairs_section),
    "dpo": StageKind(TrainSummary, _dpo_spec, report=_train_report, trains=True, blocks=_round_blocks),
    "final_rl": StageKind(TrainSummary, _final_spec, report=_train_report, trains=True, blocks=_final_blocks),
}


def plan_stages(cfg: RunConfig) -> list[PlannedStage]:
    """The stages of a run, in order (no resolution needed: ``rlaif report`` uses it too)."""
    steps = [PlannedStage("prepare/policy", "build", 0)] if cfg.policy.build_tiny else []
    steps.append(PlannedStage("round_0/eval", "eval", 0))
    if cfg.sft is not None:
        steps += [PlannedStage("sft/feedback", "sft_feedback", 0), PlannedStage("sft/train", "sft", 0)]
    for k in range(1, cfg.rounds + 1):
        steps += [
            PlannedStage(f"round_{k}/{name}", kind, k)
            for name, kind in (
                ("feedback", "feedback"),
                ("pairs", "pairs"),
                ("train", "dpo"),
                ("eval", "eval"),
            )
        ]
    if cfg.final.kind != "none":
        k = cfg.rounds + 1
        steps += [PlannedStage("final/train", "final_rl", k), PlannedStage("final/eval", "eval", k)]
    return steps


def run_blocks(cfg: RunConfig) -> dict[str, Block]:
    """Every option block the run's stage kinds declare, in registry order."""
    blocks: dict[str, Block] = {}
    for kind in KINDS.values():
        blocks.update(kind.blocks(cfg))
    return blocks
