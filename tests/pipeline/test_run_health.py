"""A real ``rlaif run`` (subprocess, vLLM on the tiny model, a real DPO step) on HH records that include
the malformed harmless-base_test line 668, with Python judges plugged in through the one judge setting:

1. the run finishes (exit 0): the malformed record is skipped and counted, self-rewarding feedback was
   judged by ``judge.template`` (a module:function judge), the win rate by ``eval.win_rate_judge``,
   and the report shows status ok, the judge and its n;
2. the same run with a stricter ``health.max_judge_invalid_rate`` fails (exit 2) on the finished
   stages without starting an engine, naming the round, stage and commonest invalid reason, and the
   report's banner says failed.

The first run is a real process; the re-checks start no engine, so they run the same CLI entry point
in this process (``cli_inprocess``), which saves a Python start per re-check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HH = HERE / "assets" / "hh_with_malformed.jsonl"  # 12 HH harmless-base test records + line 668 (4th here)

sys.path.insert(0, str(HERE))
from cli_inprocess import rlaif as rlaif_here  # noqa: E402
from pipeline_judges import DECLINED  # noqa: E402
from report_html import Report  # noqa: E402


def rlaif(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rlaif.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_run_skips_malformed_uses_the_judge_setting_and_fails_health_checks(
    tmp_path, run_config, tiny_model_dir
):
    data = run_config.tiny(
        tiny_model_dir,
        name="health",
        # one engine for the whole run: closing it for training and starting it again on the trained
        # model is test_engine_lifetime's property, and costs an engine start here
        engine={"during_training": "keep"},
        seed=5,
        judge={"template": "pipeline_judges:length_score"},
        prompts={"kind": "hh", "path": str(HH), "limit": 8},
        feedback={
            "source": "self_rewarding",
            "chunk_size": 8,
            "options": {"num_generations": 3, "sampling": {"max_tokens": 12}},
        },
        eval={
            "win_rate_prompts": {"kind": "hh", "path": str(HH), "limit": 4},
            "win_rate_limit": 4,
            "max_tokens": 8,
            "win_rate_judge": "pipeline_judges:prefer_shorter",
        },
        health={"max_judge_invalid_rate": 0.5, "min_pairs": 1},
    )
    path = run_config.write(data)
    run_dir = tmp_path / "runs" / "health"

    res = rlaif("run", str(path))
    assert res.returncode == 0, res.stderr[-3000:]
    fb = json.loads((run_dir / "round_1" / "feedback" / "manifest.json").read_text())["summary"]
    # 8 usable prompts were read past the malformed 4th record, which was counted
    assert fb["counts"]["prompts_in"] == 8 and fb["counts"]["prompts_skipped_malformed"] == 1
    assert fb["inputs"]["skipped_examples"][0].startswith(f"{HH}:4:")
    # the self-rewarding judgments came from judge.template, the Python judge
    judgments = [json.loads(line) for line in (run_dir / "round_1" / "feedback" / "judgments.jsonl").open()]
    assert judgments and {j["template"] for j in judgments} == {"pipeline_judges:length_score"}
    invalid = [j for j in judgments if j["status"] == "invalid"]
    assert invalid and {j["invalid_reason"] for j in invalid} == {DECLINED}
    assert fb["invalid_reasons"] == {DECLINED: len(invalid)}
    assert fb["counts"]["pairs_out"] >= 1
    # the win rate was judged by eval.win_rate_judge, and the report says so with n
    ev = json.loads((run_dir / "round_1" / "eval" / "manifest.json").read_text())["summary"]["metrics"]
    assert ev["win_rate_judge"].startswith("pipeline_judges:prefer_shorter (compare")
    assert ev["win_rate_n"] == 4 and ev["win_rate_prompts_skipped_malformed"] == 1
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["status"]["attrs"]["data-status"] == "ok"
    assert page.column("rounds", "win-rate prompts (n)")[-1] == "4"
    assert page.column("feedback", "malformed prompts skipped") == ["1"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "ok"

    # stricter health check: the finished stages are re-checked (no engine starts) and the run fails
    res = rlaif_here("run", str(path), "health.max_judge_invalid_rate=0.1")
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, res.stderr
    assert "round_1/feedback: health check failed" in error[0]
    assert "> health.max_judge_invalid_rate 0.1" in error[0] and DECLINED in error[0]
    assert "engine_start" not in (run_dir / "metrics.jsonl").read_text().split('"stage_skipped"')[-1]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == "round_1/feedback"
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["status"]["attrs"]["data-status"] == "failed"
    assert "FAILED at round_1/feedback" in page.text_of("status") and DECLINED in page.text_of("status")

    # a round that makes no pairs fails min_pairs, naming the stage and the commonest drop reason
    res = rlaif_here("run", str(path), "health.min_pairs=1000")
    assert res.returncode == 2
    assert "round_1/feedback: health check failed" in res.stderr and "health.min_pairs 1000" in res.stderr
