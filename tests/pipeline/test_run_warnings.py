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

from cli_inprocess import rlaif as rlaif_here
from hh_round import hh_round, refused_on_recheck, rlaif
from report_html import Report

WARNING = "round_1/eval: win-rate judge position consistency 0.0% (n=3)"


def test_a_judge_that_always_answers_a_is_a_warning_then_an_error_on_request(
    tmp_path, run_config, tiny_model_dir
):
    data = hh_round(
        run_config, tiny_model_dir, name="warned", seed=3, limit=6, win_rate_judge="pipeline_judges:always_a"
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
    page = refused_on_recheck(
        res,
        run_dir,
        "round_1/eval",
        f"round_1/eval: health check failed: {WARNING.partition(': ')[2]}",
        "health.warnings_as_errors",
    )
    assert WARNING in page.text_of("warnings")
