"""``rlaif run``: rounds of feedback → pairs → train → evaluate, then an optional final RL round.

Layout of a run directory::

    runs/<name>/
      config.yaml             the validated config (with overrides applied)
      round_0/eval/           the starting policy's metrics
      sft/feedback, sft/train SFT on a source's records (sft: block), before round 1
      round_<k>/feedback/     chunks/ (resumable), pairs.jsonl, judgments.jsonl, dropped.jsonl, stats.json
      round_<k>/pairs/        filtered pairs.jsonl + stats.json
      round_<k>/train/        adapter/ (or model/), metrics.jsonl, result.json
      round_<k>/eval/         samples + metrics.json
      final/train, final/eval the final RL round
      metrics.json            every number of the report, for machines
      metrics.jsonl           the event log (stage start/skip/finish with timings)
      status.json             running / ok / failed / interrupted (stage, reason), for the report's banner
      run.lock                held by the run writing here (one run per folder, see run_lock)
      report.html + *.png     the report

The run is a loop over the planned stages (:func:`rlaif.pipeline.stage_kinds.plan_stages`): each
stage's kind, looked up in the registry (:mod:`rlaif.pipeline.stage_kinds`), gives its config (hashed),
its input files (hashed), its body, which returns the stage's typed summary (:mod:`.summary`), its
health check and its report section; the next stages read the summaries back typed (the pairs file, the
trained policy). The runner knows no stage, source or trainer by name. ``Runner(cfg)`` compiles the
config first (:func:`rlaif.pipeline.compile.compile_run`), exactly as ``rlaif validate`` does.

Guarantees: each stage directory gets its ``manifest.json`` last; a stage whose manifest matches (same
config hash, same input hashes) is skipped; a stage without one is re-run, resuming from its finished
chunks (see :mod:`rlaif.pipeline.manifest`). Errors are re-raised as :class:`RlaifError` naming the
round and stage. After every stage, run or skipped, the health checks (:mod:`rlaif.pipeline.health`)
look at its summary; a failed check stops the run like a stage error. Either way the report is written,
with a failed banner, before the error reaches the CLI.

Code versions (:mod:`rlaif.pipeline.code_version`): the runner fingerprints the rlaif package when it is
made, records it in the events, ``status.json`` and each stage's manifest, and checks it again before
every stage: when the files changed under the run, it stops there (status failed, one line, the finished
stages kept) rather than let one process import two versions. A resumed run on other code continues
and names, in its output, events and report, the skipped stages that were made by other code. Told to
go on (``allow_code_change``), it warns instead and records the change in the events, ``status.json``
and the manifests of the stages it makes afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from rlaif.config import RunConfig
from rlaif.errors import RlaifError
from rlaif.pipeline import code_version, report, result_warnings, run_lock, tracking
from rlaif.pipeline.compile import RunPlan, compile_run
from rlaif.pipeline.context import Policy, RunContext
from rlaif.pipeline.health import write_status
from rlaif.pipeline.manifest import (
    StageTimer,
    claim_stage_dir,
    hash_json,
    hash_path,
    manifest_matches,
    read_manifest,
    write_manifest,
)
from rlaif.pipeline.stage_kinds import KINDS, PlannedStage, StageBody, StageCall, StageKind, plan_stages
from rlaif.pipeline.summary import StageSummary, next_policy, summary_from_json
from rlaif.train.memory import release_freed_memory


class StageFailed(RlaifError):
    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.reason = message


class Runner:
    def __init__(self, cfg: RunConfig | RunPlan, engine: Any = None, allow_code_change: bool = False):
        """``cfg``: a run config (compiled here: every check of ``rlaif validate`` runs before any stage)
        or one compiled already (``rlaif run`` compiles it while checking). ``engine``: an already
        running engine on the policy to reuse (tests, notebooks). ``allow_code_change``: go on, with a
        warning and a record, when rlaif's files change under the run (``--allow-code-change``)."""
        self.code = code_version.fingerprint()  # first: the code this process imported, as near as can be
        self.allow_code_change = allow_code_change
        self.on_disk = self.code  # what the next stage's check compares with (moves on an allowed change)
        self.code_changes: list[dict] = []  # the changes the run went on through
        self.compiled = cfg if isinstance(cfg, RunPlan) else compile_run(cfg)
        self.run_config = self.compiled.run
        self.cfg = self.run_config.config
        self.shared_engine = engine
        self.run_dir = self.cfg.run_dir()
        self.stages = plan_stages(self.cfg)
        self.summaries: dict[str, StageSummary] = {}
        self.skipped: list[str] = []
        self.executed: list[str] = []
        self.executing: str | None = None  # the stage running now (named by an interrupted status)

    # -- planning ---------------------------------------------------------------------------------
    def plan(self) -> list[str]:
        """The stage names in run order, then ``report``."""
        return [s.name for s in self.stages] + ["report"]

    # -- stage mechanics ----------------------------------------------------------------------------
    def stage(
        self,
        ctx: RunContext,
        planned: PlannedStage | str,
        config: Any,
        inputs: dict[str, Path | str | None],
        body: StageBody,
    ) -> StageSummary:
        """Run ``body`` in the stage's directory, or skip it when its manifest still matches; then its
        kind's health check. ``planned``: a planned stage, or the name of one of this run's."""
        if isinstance(planned, str):
            planned = next(s for s in self.stages if s.name == planned)
        kind, name = KINDS[planned.kind], planned.name
        stage_dir = self.run_dir / name
        config_hash = hash_json(config)
        input_hashes = {
            k: v if isinstance(v, str) else hash_path(v) for k, v in sorted(inputs.items()) if v is not None
        }
        summary = self._finished(stage_dir, kind, config_hash, input_hashes)
        if summary is not None:
            other = code_version.other_code(read_manifest(stage_dir), self.code)
            made_by = f" (made by other code: {code_version.record_label(other)})" if other else ""
            ctx.say(f"[{name}] up to date, skipped{made_by}")
            ctx.log_event("stage_skipped", stage=name, **({"other_code": other} if other else {}))
            self.skipped.append(name)
        else:
            self.executing = name
            if kind.trains:
                ctx.release_for_training()
            key = {"config_hash": config_hash, "input_hashes": input_hashes}
            summary = self._execute(ctx, stage_dir, name, key, body, self._code_record())
            if kind.trains:  # the trainer's freed heap would otherwise sit beside the next engine
                release_freed_memory()
            self.executed.append(name)
        self.summaries[name] = summary
        self._track()
        kind.check(name, summary.to_json(), self.cfg.health)
        if result_warnings.as_errors(self.cfg.health):  # results that mean nothing, when asked to stop
            done = self.stages[: self.stages.index(planned) + 1]
            result_warnings.raise_on_warnings(
                result_warnings.find_warnings(self.run_dir, done, self.cfg.health), self.cfg.health
            )
        return summary

    @staticmethod
    def _finished(
        stage_dir: Path, kind: StageKind, config_hash: str, inputs: dict[str, str]
    ) -> StageSummary | None:
        """The summary of a finished stage that is still valid (same config and inputs, outputs on disk)."""
        if not manifest_matches(stage_dir, config_hash, inputs):
            return None
        summary = summary_from_json(kind.summary, read_manifest(stage_dir).get("summary"))
        if summary is None or not all(Path(p).exists() for p in summary.output_paths()):
            return None  # an unreadable summary, or outputs deleted since: re-run rather than trust
        return summary

    @staticmethod
    def _execute(
        ctx: RunContext, stage_dir: Path, name: str, key: dict, body: StageBody, code: dict
    ) -> StageSummary:
        """Run the stage's body; ``key``: its config and input hashes; ``code``: the code running it."""
        ctx.say(f"[{name}] running")
        ctx.log_event("stage_start", stage=name)
        timer = StageTimer()
        claim_stage_dir(stage_dir, key["config_hash"], key["input_hashes"])
        try:
            summary = body(stage_dir)
        except RlaifError as exc:
            ctx.log_event("stage_failed", stage=name, error=str(exc))
            raise StageFailed(name, str(exc)) from None
        manifest = {"stage": name, **key, "code_version": code}
        write_manifest(stage_dir, {**manifest, "wall_s": timer.elapsed(), "summary": summary.to_json()})
        ctx.log_event("stage_done", stage=name, wall_s=timer.elapsed(), **summary.counts)
        ctx.say(f"[{name}] done in {timer.elapsed():.1f}s")
        return summary

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run every stage; on a stage failure or a failed health check the report is still written,
        with a failed status banner, before the error is raised. The run folder is locked meanwhile."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with run_lock.hold(self.run_dir):
            return self._run_locked()

    def _run_locked(self) -> dict:
        (self.run_dir / "config.yaml").write_text(
            yaml.safe_dump(self.cfg.model_dump(mode="json", exclude={"source_file"}), sort_keys=False)
        )
        write_status(
            self.run_dir, "running", config_file=self.cfg.source_file, code_version=self.code.record()
        )
        try:
            self._run_stages()
        except RlaifError as exc:  # StageFailed, HealthCheckFailed, or a setup error
            write_status(
                self.run_dir, "failed", getattr(exc, "stage", None), getattr(exc, "reason", str(exc))
            )
            result_warnings.print_warnings(self._write_report()["warnings"])
            raise
        except BaseException:  # Ctrl-C, kill: the CLI's Interrupted, KeyboardInterrupt, SystemExit
            write_status(self.run_dir, "interrupted", self.executing, "interrupted by a signal")
            self._write_report()
            raise
        write_status(self.run_dir, "ok")
        metrics = self._write_report()
        print(f"report: {self.run_dir / 'report.html'}", file=sys.stderr, flush=True)
        result_warnings.print_warnings(metrics["warnings"])
        return metrics

    def _write_report(self) -> dict:
        metrics = report.collect_metrics(self.run_dir, self.stages)
        report.write_report(self.run_dir, metrics)
        return metrics

    def _track(self) -> None:
        """The per-round metrics known so far to the run's trackers (tensorboard), after every stage."""
        if self.cfg.report_to:
            metrics = report.collect_metrics(self.run_dir, self.stages)
            tracking.log_round_metrics(self.run_dir, metrics, self.cfg.report_to)

    def _code_record(self) -> dict:
        """The code making this run's stages: the started fingerprint, plus the changes gone on through."""
        return self.code.record() | ({"changes": list(self.code_changes)} if self.code_changes else {})

    def _check_code(self, ctx: RunContext, stage: str) -> None:
        """Stop before ``stage`` when rlaif's files changed since the run started (the event names them);
        with ``allow_code_change``, warn, record the change (events, status, the next manifests) and go on."""
        try:
            self.on_disk = code_version.check_unchanged(self.on_disk, stage)
        except code_version.CodeChanged as exc:
            if not self.allow_code_change or exc.now is None:
                ctx.log_event("code_changed", stage=stage, files=exc.files, reason=exc.reason)
                raise
            warning = code_version.going_on(self.on_disk, exc.now, stage)
            ctx.log_event("code_changed", stage=stage, files=exc.files, reason=warning, allowed=True)
            self.code_changes.append(code_version.change_record(stage, exc.now, exc.files))
            self.on_disk = exc.now  # a further change warns again; this one, once
            write_status(self.run_dir, "running", code_version=self._code_record())
            print(f"warning: {warning}", file=sys.stderr, flush=True)

    def _run_stages(self) -> None:
        """Every planned stage in order; a training stage hands the next stages its policy."""
        cfg = self.cfg
        adapter = Path(cfg.policy.adapter) if cfg.policy.adapter else None
        ctx = RunContext(
            run=self.run_config, run_dir=self.run_dir, policy=Policy(Path(cfg.policy.path), adapter)
        )
        ctx.log_event("run_start", code_version=self.code.record(), package=str(code_version.package_dir()))
        if self.shared_engine is not None:
            ctx.adopt_engine(self.shared_engine, Path(cfg.policy.path))
        try:
            for planned in self.stages:
                self._check_code(ctx, planned.name)
                kind = KINDS[planned.kind]
                summary = self.stage(ctx, planned, *kind.spec(StageCall(ctx, planned, self.summaries)))
                if kind.trains:
                    ctx.policy = next_policy(summary, ctx.policy)
        finally:
            ctx.close_engines()
