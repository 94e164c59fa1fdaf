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
from rlaif.pipeline.context import Policy, RunContext
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


class StageFailed(RlaifError):
    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.reason = message


class Runner:
    def __init__(self, cfg: RunConfig, engine: Any = None):
        """``engine``: an already running engine on ``cfg.policy.path`` to reuse (tests, notebooks)."""
        self.cfg = cfg
        self.shared_engine = engine
        self.run_dir = cfg.run_dir()
        self.summaries: dict[str, dict] = {}
        self.skipped: list[str] = []
        self.executed: list[str] = []

    # -- planning ---------------------------------------------------------------------------------
    def plan(self) -> list[str]:
        steps = ["prepare/policy" if self.cfg.policy.build_tiny else None, "round_0/eval"]
        for k in range(1, self.cfg.rounds + 1):
            steps += [f"round_{k}/feedback", f"round_{k}/pairs", f"round_{k}/train", f"round_{k}/eval"]
        if self.cfg.final.kind != "none":
            steps += ["final/train", "final/eval"]
        return [s for s in steps if s] + ["report"]

    # -- stage mechanics ----------------------------------------------------------------------------
    def stage(
        self,
        ctx: RunContext,
        name: str,
        config: Any,
        inputs: dict[str, Path | str | None],
        body: Callable[[Path], dict],
    ) -> dict:
        stage_dir = self.run_dir / name
        config_hash = hash_json(config)
        input_hashes = {
            k: v if isinstance(v, str) else hash_path(v) for k, v in sorted(inputs.items()) if v is not None
        }
        if manifest_matches(stage_dir, config_hash, input_hashes) and _outputs_exist(
            read_manifest(stage_dir)
        ):
            summary = read_manifest(stage_dir)["summary"]
            ctx.say(f"[{name}] up to date, skipped")
            ctx.log_event("stage_skipped", stage=name)
            self.skipped.append(name)
            self.summaries[name] = summary
            check_stage(name, summary, self.cfg.health)
            return summary
        ctx.say(f"[{name}] running")
        ctx.log_event("stage_start", stage=name)
        timer = StageTimer()
        claim_stage_dir(stage_dir, config_hash, input_hashes)
        try:
            summary = body(stage_dir)
        except RlaifError as exc:
            ctx.log_event("stage_failed", stage=name, error=str(exc))
            raise StageFailed(name, str(exc)) from None
        write_manifest(
            stage_dir,
            {
                "stage": name,
                "config_hash": config_hash,
                "input_hashes": input_hashes,
                "wall_s": timer.elapsed(),
                "summary": summary,
            },
        )
        ctx.log_event("stage_done", stage=name, wall_s=timer.elapsed(), **_scalars(summary))
        ctx.say(f"[{name}] done in {timer.elapsed():.1f}s")
        self.executed.append(name)
        self.summaries[name] = summary
        check_stage(name, summary, self.cfg.health)
        return summary

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run every stage; on a stage failure or a failed health check the report is still written,
        with a failed status banner, before the error is raised."""
        from rlaif.pipeline import report

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
        from rlaif.pipeline import stages

        cfg = self.cfg
        base = Path(cfg.policy.path)
        if cfg.policy.build_tiny:
            ctx0 = RunContext(cfg=cfg, run_dir=self.run_dir, policy=Policy(base))
            self.stage(
                ctx0,
                "prepare/policy",
                cfg.policy.model_dump(mode="json"),
                {},
                lambda d: stages.build_policy(cfg, d),
            )
        adapter = Path(cfg.policy.adapter) if cfg.policy.adapter else None
        ctx = RunContext(cfg=cfg, run_dir=self.run_dir, policy=Policy(base, adapter))
        if self.shared_engine is not None:
            ctx.adopt_engine(self.shared_engine, base)
        try:
            eval_cfg = {"eval": cfg.eval.model_dump(mode="json"), "seed": cfg.seed}
            self.stage(
                ctx,
                "round_0/eval",
                eval_cfg,
                self._policy_inputs(ctx),
                lambda d: stages.evaluate(ctx, d, round_index=0, previous=None),
            )
            previous_eval = self.run_dir / "round_0" / "eval"
            for k in range(1, cfg.rounds + 1):
                fb_cfg = {
                    "feedback": cfg.feedback.model_dump(mode="json"),
                    "prompts": cfg.prompts.model_dump(mode="json"),
                    "judge": cfg.judge.model_dump(mode="json"),
                    "seed": cfg.seed,
                    "round": k,
                }
                fb = self.stage(
                    ctx,
                    f"round_{k}/feedback",
                    fb_cfg,
                    self._policy_inputs(ctx),
                    lambda d, k=k: stages.feedback(ctx, d, round_index=k),
                )
                pairs_in = Path(fb["outputs"]["pairs"])
                pr = self.stage(
                    ctx,
                    f"round_{k}/pairs",
                    cfg.pairs.model_dump(mode="json"),
                    {"pairs": pairs_in},
                    lambda d, p=pairs_in: stages.filter_pairs(ctx, d, p),
                )
                pairs_file = Path(pr["outputs"]["pairs"])
                tr = self.stage(
                    ctx,
                    f"round_{k}/train",
                    {"dpo": cfg.dpo, "seed": cfg.seed},
                    {"pairs": pairs_file, **self._policy_inputs(ctx)},
                    lambda d, p=pairs_file, k=k: stages.train_dpo(ctx, d, p, round_index=k),
                )
                ctx.policy = stages.policy_from_summary(tr, ctx.policy)
                self.stage(
                    ctx,
                    f"round_{k}/eval",
                    eval_cfg,
                    {**self._policy_inputs(ctx), "previous": previous_eval / "samples.jsonl"},
                    lambda d, k=k, prev=previous_eval: stages.evaluate(ctx, d, round_index=k, previous=prev),
                )
                previous_eval = self.run_dir / f"round_{k}" / "eval"
            if cfg.final.kind != "none":
                fin_cfg = {"final": cfg.final.model_dump(mode="json"), "seed": cfg.seed}
                tr = self.stage(
                    ctx,
                    "final/train",
                    fin_cfg,
                    self._policy_inputs(ctx),
                    lambda d: stages.train_final(ctx, d),
                )
                ctx.policy = stages.policy_from_summary(tr, ctx.policy)
                self.stage(
                    ctx,
                    "final/eval",
                    eval_cfg,
                    {**self._policy_inputs(ctx), "previous": previous_eval / "samples.jsonl"},
                    lambda d, prev=previous_eval: stages.evaluate(
                        ctx, d, round_index=cfg.rounds + 1, previous=prev, label="final"
                    ),
                )
        finally:
            ctx.close_engines()

    @staticmethod
    def _policy_inputs(ctx: RunContext) -> dict[str, Path | str | None]:
        # The base model is fingerprinted (names, sizes, mtimes: hashing GBs of weights per stage would
        # cost minutes); adapters are small and hashed by content.
        return {"policy": fingerprint_dir(ctx.policy.path), "adapter": ctx.policy.adapter}


def _outputs_exist(manifest: dict) -> bool:
    """A finished stage whose outputs were deleted since is re-run rather than trusted."""
    outputs = manifest.get("summary", {}).get("outputs", {})
    return all(Path(p).exists() for p in outputs.values() if isinstance(p, str))


def _scalars(summary: dict) -> dict:
    return {k: v for k, v in summary.get("counts", {}).items() if isinstance(v, (int, float, str))}
