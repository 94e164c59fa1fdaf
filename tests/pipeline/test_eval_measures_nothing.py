"""An eval block that names no held-out set starts no policy engine for evaluation.

Why: an engine start costs tens of seconds on the tiny model and minutes on a real one, per round; a
run that measures nothing used to pay it for every eval stage. The real test runs one instruction-loop
round on the tiny model through the CLI (``rlaif run``) with the run's own vLLM engine and no eval set,
then reads the event log: the engine is started once, by the feedback stage that samples from it, and
never by round 0's or round 1's evaluation. The report, the CLI's JSON and a resumed run still work on
the empty evaluations."""

from __future__ import annotations

import json
from pathlib import Path

from cli_inprocess import rlaif
from instruction_round import PIPELINE, engine_events, one_round

ENGINE_AND_STAGE_EVENTS = ("engine_start", "engines_released", "stage_start", "stage_skipped")


def test_an_eval_that_measures_nothing_starts_no_engine(tmp_path, tiny_model_dir):
    overrides = one_round(tmp_path, tiny_model_dir, "eval.instructions=null")
    res = rlaif("run", str(PIPELINE), *overrides)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    run_dir = Path(out["run_dir"])
    assert engine_events(run_dir, *ENGINE_AND_STAGE_EVENTS) == [
        ("stage_start", "round_0/eval"),
        ("stage_start", "round_1/feedback"),
        ("engine_start", str(tiny_model_dir)),
        ("stage_start", "round_1/pairs"),
        ("engines_released", ["policy"]),
        ("stage_start", "round_1/train"),
        ("stage_start", "round_1/eval"),
    ]
    err = res.stderr.splitlines()
    assert sum(x.startswith("  starting the policy engine: ") for x in err) == 1, err
    for stage in ("round_0/eval", "round_1/eval"):
        assert f"  {stage}: eval measures nothing (no code_problems, win_rate_prompts or instructions)" in err
        assert (run_dir / stage / "samples.jsonl").read_text() == ""
    # the report and the CLI read the empty evaluations as rounds with nothing measured
    assert out["rounds"] == [
        {"round": 0, "label": "round 0", "mean_response_tokens": None},
        {"round": 1, "label": "round 1", "mean_response_tokens": None},
    ]
    assert (run_dir / "report.html").is_file() and not (run_dir / "per_round.png").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["rounds"] == out["rounds"]

    again = rlaif("run", str(PIPELINE), *overrides)  # resume: every stage up to date, still no engine
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(again.stdout)
    assert resumed["executed"] == [] and len(resumed["skipped"]) == 5
    assert "starting the policy engine" not in again.stderr
