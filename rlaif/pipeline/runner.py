"""``rlaif run``: rounds of feedback → pairs → train → evaluate, then an optional final RL round.

Layout of a run directory::

    runs/<name>/
      config.yaml             the validated config (with overrides applied)
      round_0/eval/           the starting policy's metrics
      round_<k>/feedback/     chunks/ (resumable), pairs.jsonl, judgments.jsonl, dropped.jsonl, stats.json
      round_<k>/pairs/        filtered pairs.jsonl + stats.json
      round_<k>/train/        adapter/ (or model/), metrics.jsonl, result.json
      round_<k>/eval/         samples + metrics.json
      final/train, final/eval the final RL round
      metrics.json            every number of the report, for machines
      metrics.jsonl           the event log (stage start/skip/finish with timings)
      status.json             running / ok / failed (stage, reason), for the report's banner
      report.html + *.png     the report

The run is a loop over :meth:`Runner.plan`: each planned stage name maps to its config (hashed), its
input files (hashed) and its body, which returns the stage's typed summary (:mod:`.summary`); the next
stages read the summaries back typed (the pairs file, the trained policy).

Guarantees: each stage directory gets its ``manifest.json`` last; a stage whose manifest matches (same
config hash, same input hashes) is skipped; a stage without one is re-run, resuming from its finished
chunks (see :mod:`rlaif.pipeline.manifest`). Errors are re-raised as :class:`RlaifError` naming the
round and stage. After every stage, run or skipped, the health checks (:mod:`rlaif.pipeline.health`)
look at its summary; a failed check stops the run like a stage error. Either way the report is written,
with a failed banner, before the error reaches the CLI.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from rlaif.config import RunConfig
from rlaif.errors import RlaifError
from rlaif.pipeline import report, stages
from rlaif.pipeline.compile import RunPlan, compile_run
from rlaif.pipeline.context import Policy, RunContext
from rlaif.pipeline.evaluation import evaluate_policy
from rlaif.pipeline.feedback_stage import feedback
from rlaif.pipeline.final_round import run_final_round
from rlaif.pipeline.health import check_stage, write_status
from rlaif.pipeline.manifest import (
    StageTimer,
    claim_stage_dir,
    fingerprint_dir,
    hash_json,
    hash_path,
    manifest_matches,
    read_manifest,
    write_manifest,
)
from rlaif.pipeline.summary import StageSummary, next_policy, summary_from_json

StageBody = Callable[[Path], StageSummary]


class StageFailed(RlaifError):
    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.reason = message


def plan_stages(cfg: RunConfig) -> list[str]:
    """The stage names of a run, in order (no resolution needed: ``rlaif report`` uses it too)."""
    steps = ["prepare/policy" if cfg.policy.build_tiny else None, "round_0/eval"]
    for k in range(1, cfg.rounds + 1):
        steps += [f"round_{k}/feedback", f"round_{k}/pairs", f"round_{k}/train", f"round_{k}/eval"]
    if cfg.final.kind != "none":
        steps += ["final/train", "final/eval"]
    return [s for s in steps if s] + ["report"]


class Runner:
    def __init__(self, cfg: RunConfig | RunPlan, engine: Any = None):
        """``cfg``: a run config (compiled here: every check of ``rlaif validate`` runs before any stage)
        or one compiled already (``rlaif run`` compiles it while checking). ``engine``: an already
        running engine on the policy to reuse (tests, notebooks)."""
        self.compiled = cfg if isinstance(cfg, RunPlan) else compile_run(cfg)
        self.run_config = self.compiled.run
        self.cfg = self.run_config.config
        self.shared_engine = engine
        self.run_dir = self.cfg.run_dir()
        self.summaries: dict[str, StageSummary] = {}
        self.skipped: list[str] = []
        self.executed: list[str] = []

    # -- planning ---------------------------------------------------------------------------------
    def plan(self) -> list[str]:
        return plan_stages(self.cfg)

    # -- stage mechanics ----------------------------------------------------------------------------
    def stage(
        self, ctx: RunContext, name: str, config: Any, inputs: dict[str, Path | str | None], body: StageBody
    ) -> StageSummary:
        stage_dir = self.run_dir / name
        config_hash = hash_json(config)
        input_hashes = {
            k: v if isinstance(v, str) else hash_path(v) for k, v in sorted(inputs.items()) if v is not None
        }
        summary = self._finished(stage_dir, name, config_hash, input_hashes)
        if summary is not None:
            ctx.say(f"[{name}] up to date, skipped")
            ctx.log_event("stage_skipped", stage=name)
            self.skipped.append(name)
        else:
            summary = self._execute(ctx, stage_dir, name, config_hash, input_hashes, body)
            self.executed.append(name)
        self.summaries[name] = summary
        check_stage(name, summary.to_json(), self.cfg.health)
        return summary

    @staticmethod
    def _finished(
        stage_dir: Path, name: str, config_hash: str, inputs: dict[str, str]
    ) -> StageSummary | None:
        """The summary of a finished stage that is still valid (same config and inputs, outputs on disk)."""
        if not manifest_matches(stage_dir, config_hash, inputs):
            return None
        summary = summary_from_json(name, read_manifest(stage_dir).get("summary"))
        if summary is None or not all(Path(p).exists() for p in summary.output_paths()):
            return None  # an unreadable summary, or outputs deleted since: re-run rather than trust
        return summary

    @staticmethod
    def _execute(
        ctx: RunContext, stage_dir: Path, name: str, config_hash: str, inputs: dict[str, str], body: StageBody
    ) -> StageSummary:
        ctx.say(f"[{name}] running")
        ctx.log_event("stage_start", stage=name)
        timer = StageTimer()
        claim_stage_dir(stage_dir, config_hash, inputs)
        try:
            summary = body(stage_dir)
        except RlaifError as exc:
            ctx.log_event("stage_failed", stage=name, error=str(exc))
            raise StageFailed(name, str(exc)) from None
        manifest = {"stage": name, "config_hash": config_hash, "input_hashes": inputs}
        write_manifest(stage_dir, {**manifest, "wall_s": timer.elapsed(), "summary": summary.to_json()})
        ctx.log_event("stage_done", stage=name, wall_s=timer.elapsed(), **summary.counts)
        ctx.say(f"[{name}] done in {timer.elapsed():.1f}s")
        return summary

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run every stage; on a stage failure or a failed health check the report is still written,
        with a failed status banner, before the error is raised."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(
            yaml.safe_dump(self.cfg.model_dump(mode="json", exclude={"source_file"}), sort_keys=False)
        )
        write_status(self.run_dir, "running", config_file=self.cfg.source_file)
        try:
            self._run_stages()
        except RlaifError as exc:  # StageFailed, HealthCheckFailed, or a setup error
            write_status(
                self.run_dir, "failed", getattr(exc, "stage", None), getattr(exc, "reason", str(exc))
            )
            self._write_report(report)
            raise
        write_status(self.run_dir, "ok")
        metrics = self._write_report(report)
        print(f"report: {self.run_dir / 'report.html'}", file=sys.stderr, flush=True)
        return metrics

    def _write_report(self, report) -> dict:
        metrics = report.collect_metrics(self.run_dir, self.plan())
        report.write_report(self.run_dir, metrics)
        return metrics

    def _run_stages(self) -> None:
        """Every planned stage in order; a training stage hands the next stages its policy."""
        cfg = self.cfg
        adapter = Path(cfg.policy.adapter) if cfg.policy.adapter else None
        ctx = RunContext(
            run=self.run_config, run_dir=self.run_dir, policy=Policy(Path(cfg.policy.path), adapter)
        )
        if self.shared_engine is not None:
            ctx.adopt_engine(self.shared_engine, Path(cfg.policy.path))
        try:
            for name in self.plan():
                if name == "report":
                    continue
                summary = self.stage(ctx, name, *self._stage_spec(ctx, name))
                if name.endswith("/train"):
                    ctx.policy = next_policy(summary, ctx.policy)
        finally:
            ctx.close_engines()

    # -- what each planned stage is -----------------------------------------------------------------
    def _stage_spec(self, ctx: RunContext, name: str) -> tuple[Any, dict[str, Path | str | None], StageBody]:
        """(config to hash, input files to hash, body) of a planned stage."""
        cfg = self.cfg
        group, _, kind = name.partition("/")
        if kind == "policy":
            return cfg.policy.model_dump(mode="json"), {}, lambda d: stages.build_policy(cfg, d)
        k = cfg.rounds + 1 if group == "final" else int(group.removeprefix("round_"))
        policy = self._policy_inputs(ctx)
        if kind == "eval":
            return self._eval_spec(ctx, k, label="final" if group == "final" else f"round {k}")
        if kind == "feedback":
            fb_cfg = {
                "feedback": cfg.feedback.model_dump(mode="json"),
                "prompts": cfg.prompts.model_dump(mode="json"),
                "judge": cfg.judge.model_dump(mode="json"),
                "seed": cfg.seed,
                "round": k,
            }
            return fb_cfg, policy, lambda d: feedback(ctx, d, round_index=k)
        if kind == "pairs":
            pairs_in = Path(self.summaries[f"{group}/feedback"].outputs.pairs)
            return (
                cfg.pairs.model_dump(mode="json"),
                {"pairs": pairs_in},
                lambda d: stages.filter_pairs(ctx, d, pairs_in),
            )
        if group == "final":
            return (
                {"final": cfg.final.model_dump(mode="json"), "seed": cfg.seed},
                policy,
                lambda d: run_final_round(ctx, d),
            )
        pairs_file = Path(self.summaries[f"{group}/pairs"].outputs.pairs)
        inputs = {"pairs": pairs_file, **policy}
        return (
            {"dpo": cfg.dpo, "seed": cfg.seed},
            inputs,
            lambda d: stages.train_dpo(ctx, d, pairs_file, round_index=k),
        )

    def _eval_spec(self, ctx: RunContext, k: int, label: str) -> tuple[Any, dict, StageBody]:
        """Evaluation after round ``k`` (0: the starting policy), compared with the evaluation before it."""
        eval_cfg = {"eval": self.cfg.eval.model_dump(mode="json"), "seed": self.cfg.seed}
        if k == 0:
            return eval_cfg, self._policy_inputs(ctx), lambda d: evaluate_policy(ctx, d, 0, None, label)
        previous = self.run_dir / f"round_{k - 1}" / "eval"  # final: after the last DPO round
        inputs = {**self._policy_inputs(ctx), "previous": previous / "samples.jsonl"}
        start = None
        if k >= 2:  # round 1's previous evaluation is the start already
            start = self.run_dir / "round_0" / "eval"
            inputs["start"] = start / "samples.jsonl"
        return eval_cfg, inputs, lambda d: evaluate_policy(ctx, d, k, previous, label, start)

    @staticmethod
    def _policy_inputs(ctx: RunContext) -> dict[str, Path | str | None]:
        # The base model is fingerprinted (names, sizes, mtimes: hashing GBs of weights per stage would
        # cost minutes); adapters are small and hashed by content.
        return {"policy": fingerprint_dir(ctx.policy.path), "adapter": ctx.policy.adapter}
