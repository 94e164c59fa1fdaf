"""A real ``rlaif run`` (subprocess, vLLM on the tiny model, a real DPO step) on HH records that include
the malformed harmless-base_test line 668, with Python judges plugged in through the one judge setting;
its win rate is judged by a Python judge that always answers "A" (``pipeline_judges:always_a``, a logic
double for a broken judge):

1. the run finishes (exit 0): the malformed record is skipped and counted, self-rewarding feedback was
   judged by ``judge.template`` (a module:function judge), the win rate by ``eval.win_rate_judge``,
   and the report shows status ok, the judge and its n; but its last terminal line and the report's
   warning block say the win-rate judge's position consistency is 0% and its 50% win rate means
   nothing;
2. the same run with a stricter ``health.max_judge_invalid_rate`` fails (exit 2) on the finished
   stages without starting an engine, naming the round, stage and commonest invalid reason, and the
   report's banner says failed; so does ``health.min_pairs`` above what the round made;
3. the same run with ``health.warnings_as_errors=true`` fails (exit 2) the same way, with one error
   line naming the round, the stage and the figure.

One real process serves all three (the health checks and the warning are separate properties of the
same finished run; a second real run would cost an engine start and a DPO step and prove nothing
more). The re-checks start no engine, so they run the same CLI entry point in this process
(``cli_inprocess``), which saves a Python start per re-check.
"""

from __future__ import annotations

import json

from cli_inprocess import rlaif as rlaif_here
from hh_round import HH, hh_round, refused_on_recheck, rlaif
from pipeline_judges import DECLINED
from report_html import Report

WARNING = "round_1/eval: win-rate judge position consistency 0.0% (n=4)"


def test_run_skips_malformed_uses_the_judge_setting_fails_health_checks_and_warns(
    tmp_path, run_config, tiny_model_dir
):
    data = hh_round(
        run_config,
        tiny_model_dir,
        name="health",
        seed=5,
        limit=8,
        chunk_size=8,
        win_rate_judge="pipeline_judges:always_a",
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
    assert ev["win_rate_judge"].startswith("pipeline_judges:always_a (compare")
    assert ev["win_rate_n"] == 4 and ev["win_rate_prompts_skipped_malformed"] == 1
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["status"]["attrs"]["data-status"] == "ok"
    assert page.column("rounds", "win-rate prompts (n)")[-1] == "4"
    assert page.column("feedback", "malformed prompts skipped") == ["1"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "ok"
    # a judge that always answers "A": the run is ok, but warned on its last line and in the report
    assert ev["judge_position_consistency"] == 0.0 and ev["win_rate_vs_previous"] == 0.5
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"warning: {WARNING}") and "win rate 50.0% means nothing" in last, res.stderr[
        -2000:
    ]
    assert json.loads(res.stdout)["warnings"][0].startswith(WARNING)
    assert "1 warning(s) below" in page.text_of("status")
    assert WARNING in page.text_of("warnings")

    # stricter health check: the finished stages are re-checked (no engine starts) and the run fails
    res = rlaif_here("run", str(path), "health.max_judge_invalid_rate=0.1")
    page = refused_on_recheck(
        res,
        run_dir,
        "round_1/feedback",
        "round_1/feedback: health check failed",
        "> health.max_judge_invalid_rate 0.1",
        DECLINED,
    )
    assert DECLINED in page.text_of("status")

    # a round that makes no pairs fails min_pairs, naming the stage and the commonest drop reason
    res = rlaif_here("run", str(path), "health.min_pairs=1000")
    assert res.returncode == 2
    assert "round_1/feedback: health check failed" in res.stderr and "health.min_pairs 1000" in res.stderr

    # the warning becomes an error on request, on the finished stages (no engine starts)
    res = rlaif_here("run", str(path), "health.warnings_as_errors=true")
    page = refused_on_recheck(
        res,
        run_dir,
        "round_1/eval",
        f"round_1/eval: health check failed: {WARNING.partition(': ')[2]}",
        "health.warnings_as_errors",
    )
    assert WARNING in page.text_of("warnings")
