"""A real ``rlaif run`` (subprocess, vLLM on the tiny model, a real DPO step) whose win rate is judged by
a Python judge that always answers "A" (``pipeline_judges:always_a``, a logic double for a broken judge):

1. the run finishes (exit 0, status ok), but its last terminal line and the report's warning block say
   the win-rate judge's position consistency is 0% and its 50% win rate means nothing;
2. the same run with ``health.warnings_as_errors=true`` fails (exit 2) on the finished stages without
   starting an engine, with one error line naming the round, the stage and the figure, and the report's
   banner says failed.

The first run is a real process; the re-check starts no engine, so it runs the same CLI entry point in
this process (``cli_inprocess``), which saves a Python start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HH = HERE / "assets" / "hh_with_malformed.jsonl"

sys.path.insert(0, str(HERE))
from cli_inprocess import rlaif as rlaif_here  # noqa: E402
from report_html import Report  # noqa: E402

WARNING = "round_1/eval: win-rate judge position consistency 0.0% (n=3)"


def rlaif(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rlaif.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_a_judge_that_always_answers_a_is_a_warning_then_an_error_on_request(
    tmp_path, run_config, tiny_model_dir
):
    data = run_config.tiny(
        tiny_model_dir,
        name="warned",
        # one engine for the whole run: closing it for training and starting it again on the trained
        # model is test_engine_lifetime's property, and costs an engine start here
        engine={"during_training": "keep"},
        seed=3,
        judge={"template": "pipeline_judges:length_score"},
        prompts={"kind": "hh", "path": str(HH), "limit": 6},
        feedback={
            "source": "self_rewarding",
            "options": {"num_generations": 3, "sampling": {"max_tokens": 12}},
        },
        eval={
            "win_rate_prompts": {"kind": "hh", "path": str(HH), "limit": 3},
            "win_rate_limit": 3,
            "max_tokens": 8,
            "win_rate_judge": "pipeline_judges:always_a",
        },
        health={"max_judge_invalid_rate": 0.5, "min_pairs": 1},  # the checks on, as a user's run has them
    )
    path = run_config.write(data)
    run_dir = tmp_path / "runs" / "warned"

    res = rlaif("run", str(path))
    assert res.returncode == 0, res.stderr[-3000:]
    ev = json.loads((run_dir / "round_1" / "eval" / "manifest.json").read_text())["summary"]["metrics"]
    assert ev["judge_position_consistency"] == 0.0 and ev["win_rate_vs_previous"] == 0.5
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"warning: {WARNING}") and "win rate 50.0% means nothing" in last, res.stderr[
        -2000:
    ]
    assert json.loads(res.stdout)["warnings"][0].startswith(WARNING)
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["status"]["attrs"]["data-status"] == "ok"
    assert "1 warning(s) below" in page.text_of("status")
    assert WARNING in page.text_of("warnings")

    res = rlaif_here("run", str(path), "health.warnings_as_errors=true")
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, res.stderr
    assert f"round_1/eval: health check failed: {WARNING.partition(': ')[2]}" in error[0]
    assert "health.warnings_as_errors" in error[0]
    assert "engine_start" not in (run_dir / "metrics.jsonl").read_text().split('"stage_skipped"')[-1]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == "round_1/eval"
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["status"]["attrs"]["data-status"] == "failed"
    assert "FAILED at round_1/eval" in page.text_of("status") and WARNING in page.text_of("warnings")
