"""``rlaif run``, ``rlaif validate``, ``rlaif report`` and ``rlaif demo``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rlaif.commands.output import emit
from rlaif.commands.resources import resolve_pipeline, shipped_dir
from rlaif.errors import ConfigError


def check_config(file: Path, overrides: list[str]):
    """Load and compile a run config (:func:`rlaif.pipeline.compile.compile_run`: every block, judge, data
    file and cross-field rule, without loading any model). Returns the plan the runner reuses; notes
    (skipped malformed records) go to stderr."""
    from rlaif.config.loading import load_run_config
    from rlaif.pipeline.compile import compile_run

    plan = compile_run(load_run_config(file, overrides))
    for key, info in plan.inputs.items():
        if info["skipped_malformed"]:
            print(
                f"note: '{key}': skipped {info['skipped_malformed']} malformed record(s), using "
                f"{info['records']} (first: {info['skipped_examples'][0]}); set {key}.malformed=error "
                "to stop on them instead",
                file=sys.stderr,
            )
    return plan


def validate(
    file: Path | None = typer.Argument(None, help="Run config YAML (optional with --explain)."),
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides."),
    explain: str | None = typer.Option(
        None,
        "--explain",
        help="Print a key's type, default and meaning (e.g. dpo.beta): for this run's own source, judge "
        "and final trainer with FILE, for every block that has the key without it.",
    ),
) -> None:
    """Check a run config (and every stage's options) without loading any model."""
    if file is None:
        if explain is None:
            raise ConfigError("validate needs a run config FILE (or --explain KEY alone)")
        _explain_any(explain)
        return
    file = resolve_pipeline(file)
    if explain is not None:
        _explain(file, overrides or [], explain)
        return
    cfg = check_config(file, overrides or []).config
    sft = "SFT, then " if cfg.sft else ""
    emit(f"ok: {file} (run '{cfg.name}', {sft}{cfg.rounds} DPO round(s), final={cfg.final.kind})")


def _explain(file: Path, overrides: list[str], key: str) -> None:
    """One key as this run reads it: its source's options, its judge kind's, its final trainer's.
    Only the schema is loaded (no data file or model is checked), so it works before they exist."""
    from rlaif.commands.config_reference import all_sections, explain, run_sections
    from rlaif.config.loading import load_run_config

    cfg = load_run_config(file, overrides)
    for text in explain(key, run_sections(cfg), str(file), others=all_sections()):
        emit(text)


def _explain_any(key: str) -> None:
    """One key in every block of the reference that has it (``feedback.options.X`` may belong to several
    sources, each paragraph names its own), when there is no run to narrow it down."""
    from rlaif.commands.config_reference import all_sections, explain

    for text in explain(key, all_sections(), "config"):
        emit(text)


ALLOW_CODE_CHANGE = typer.Option(
    False,
    "--allow-code-change",
    help="When rlaif's own files change under the run (an edit, a git pull), warn and go on instead "
    "of stopping before the next stage; the change is still recorded (events, status.json, the "
    "manifests of the stages made after it).",
)


def run(
    file: Path = typer.Argument(..., help="Run config YAML."),
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides, e.g. rounds=2 dpo.beta=0.2"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (stages, skipped or to run) and exit."
    ),
    allow_code_change: bool = ALLOW_CODE_CHANGE,
) -> None:
    """Run (or resume) a self-improvement pipeline."""
    file = resolve_pipeline(file)
    resolved = check_config(file, overrides or [])
    flags = ["--allow-code-change"] if allow_code_change else []
    _execute(resolved, dry_run, ["rlaif", "run", str(file), *(overrides or []), *flags], allow_code_change)


def _execute(resolved, dry_run: bool, command: list[str], allow_code_change: bool = False) -> None:
    import shlex

    from rlaif.commands import interrupts
    from rlaif.pipeline.manifest import read_manifest
    from rlaif.pipeline.runner import Runner

    runner = Runner(resolved, allow_code_change=allow_code_change)
    interrupts.set_resume_hint(
        f"finished stages and chunks are kept in {runner.run_dir}; resume with: {shlex.join(command)}"
    )
    if dry_run:
        for step in runner.plan():
            done = step != "report" and read_manifest(runner.run_dir / step) is not None
            emit(f"{step:24s} {'done (will be checked and skipped if unchanged)' if done else 'to run'}")
        return
    metrics = runner.run()
    emit(
        json.dumps(
            {
                "run_dir": str(runner.run_dir),
                "executed": runner.executed,
                "skipped": runner.skipped,
                "rounds": metrics["rounds"],
                "warnings": [w["message"] for w in metrics["warnings"]],
            },
            indent=2,
            default=str,
        )
    )


def report(run_dir: Path = typer.Argument(..., help="A run directory (runs/<name>).")) -> None:
    """Re-render metrics.json, the plots and report.html of a finished or partial run."""
    from pydantic import ValidationError

    from rlaif.config import RunConfig
    from rlaif.errors import describe_validation_error
    from rlaif.files import load_yaml_mapping
    from rlaif.pipeline.report import collect_metrics, write_report
    from rlaif.pipeline.result_warnings import print_warnings
    from rlaif.pipeline.stage_kinds import plan_stages

    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    try:
        cfg = RunConfig.model_validate(load_yaml_mapping(cfg_file))
    except ValidationError as exc:
        raise ConfigError(
            f"{cfg_file}: {describe_validation_error(exc, limit=1, config_keys=True)}"
        ) from None
    metrics = collect_metrics(run_dir, plan_stages(cfg))
    emit(write_report(run_dir, metrics))
    print_warnings(metrics["warnings"])


def demo(
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides of pipelines/demo.yaml."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and exit."),
    allow_code_change: bool = ALLOW_CODE_CHANGE,
) -> None:
    """The CPU demo: a from-scratch code model improved by RLCF rounds (DPO) and a final PPO round."""
    file = shipped_dir("pipelines") / "demo.yaml"
    if not file.is_file():
        raise ConfigError(f"demo pipeline not found at {file}")
    resolved = check_config(file, overrides or [])
    print(f"demo: {file} -> {resolved.config.run_dir()}", file=sys.stderr)
    flags = ["--allow-code-change"] if allow_code_change else []
    _execute(resolved, dry_run, ["rlaif", "demo", *(overrides or []), *flags], allow_code_change)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("report")(report)
    app.command("demo")(demo)
