"""One real self-rewarding round on the HH records that hold the malformed line, for the run-health
tests: the run as its own process, its config, and what a stricter re-check that fails must show
(the re-check starts no engine, so the tests run it in-process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_process import cli_env
from cli_results import fails
from report_html import Report

HERE = Path(__file__).resolve().parent
HH = HERE / "assets" / "hh_with_malformed.jsonl"  # 12 HH harmless-base test records + line 668 (4th here)


def rlaif(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``rlaif`` in its own process, with this folder's judges importable."""
    return subprocess.run(
        [sys.executable, "-m", "rlaif.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(HERE),
    )


def hh_round(
    run_config, model: Path, *, limit: int, win_rate_judge: str, chunk_size: int | None = None, **changes
) -> dict:
    """Self-rewarding on ``limit`` HH prompts judged by ``pipeline_judges:length_score``, the win rate
    on half as many judged by ``win_rate_judge``, the health checks on; ``changes``: top-level keys."""
    sections = {
        # one engine for the whole run: closing it for training and starting it again on the trained
        # model is test_engine_lifetime's property, and costs an engine start here
        "engine": {"during_training": "keep"},
        "judge": {"template": "pipeline_judges:length_score"},
        "prompts": {"kind": "hh", "path": str(HH), "limit": limit},
        "feedback": {
            "source": "self_rewarding",
            "options": {"num_generations": 3, "sampling": {"max_tokens": 12}},
        },
        "eval": {
            "win_rate_prompts": {"kind": "hh", "path": str(HH), "limit": limit // 2},
            "win_rate_limit": limit // 2,
            "max_tokens": 8,
            "win_rate_judge": win_rate_judge,
        },
        "health": {"max_judge_invalid_rate": 0.5, "min_pairs": 1},  # the checks on, as a user's run has them
    }
    if chunk_size is not None:
        sections["feedback"]["chunk_size"] = chunk_size
    return run_config.tiny(model, **sections, **changes)


def refused_on_recheck(res: subprocess.CompletedProcess, run_dir: Path, stage: str, *needles: str) -> Report:
    """The finished run re-checked and failed at ``stage``: one error line holding ``needles``, no
    engine started, status.json and the report's banner say failed there; returns the report."""
    fails(res, *needles)
    assert "engine_start" not in (run_dir / "metrics.jsonl").read_text().split('"stage_skipped"')[-1]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == stage
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["status"]["attrs"]["data-status"] == "failed"
    assert f"FAILED at {stage}" in page.text_of("status")
    return page
