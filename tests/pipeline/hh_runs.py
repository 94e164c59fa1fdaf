"""Real ``rlaif run`` subprocesses on HH records with Python judges (pipeline_judges.py), shared by the
run-health and run-warnings tests: the run config, the CLI call, and the checks every refused re-run
must pass (exit 2 on the finished stages, one error line, no engine started, status and report say
failed at the stage)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_process import run_cli
from report_html import Report

HERE = Path(__file__).resolve().parent
HH = HERE / "assets" / "hh_with_malformed.jsonl"  # 12 HH harmless-base test records + line 668 (4th here)


def rlaif(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The CLI with the pipeline test plug-ins (pipeline_judges) importable."""
    return run_cli(*args, timeout=timeout, paths=(HERE,))


def hh_run(
    run_config, model: Path, name: str, *, seed: int, prompts: int, win_rate_prompts: int,
    win_rate_judge: str, **feedback,
) -> Path:  # fmt: skip
    """A one-round self-rewarding run on the first ``prompts`` HH records (the malformed one is skipped
    and counted), judged by ``pipeline_judges:length_score``, its win rate on ``win_rate_prompts`` by
    ``win_rate_judge``, with the health checks on as a user's run has them. ``feedback``: more
    feedback settings (``chunk_size``)."""
    data = run_config.tiny(
        model,
        name=name,
        seed=seed,
        judge={"template": "pipeline_judges:length_score"},
        prompts={"kind": "hh", "path": str(HH), "limit": prompts},
        feedback={
            "source": "self_rewarding",
            **feedback,
            "options": {"num_generations": 3, "sampling": {"max_tokens": 12}},
        },
        eval={
            "win_rate_prompts": {"kind": "hh", "path": str(HH), "limit": win_rate_prompts},
            "win_rate_limit": win_rate_prompts,
            "max_tokens": 8,
            "win_rate_judge": win_rate_judge,
        },
        health={"max_judge_invalid_rate": 0.5, "min_pairs": 1},
    )
    return run_config.write(data)


def refused_rerun(path: Path, run_dir: Path, stage: str, override: str, timeout: int) -> tuple[str, Report]:
    """Re-run the finished run with ``override``: it must fail its health check at ``stage`` up front.

    Returns the one error line and the report, for the caller's own checks of what they name."""
    res = rlaif("run", str(path), override, timeout=timeout)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, res.stderr
    assert f"{stage}: health check failed" in error[0]
    assert "engine_start" not in (run_dir / "metrics.jsonl").read_text().split('"stage_skipped"')[-1]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == stage
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["status"]["attrs"]["data-status"] == "failed"
    assert f"FAILED at {stage}" in page.text_of("status")
    return error[0], page
