"""An eval block that names no held-out set starts no policy engine for evaluation.

Why: an engine start costs tens of seconds on the tiny model and minutes on a real one, per round; a
run that measures nothing used to pay it for every eval stage. The real test runs one instruction-loop
round on the tiny model through the CLI (``rlaif run``) with the run's own vLLM engine and no eval set,
then reads the event log: the engine is started once, by the feedback stage that samples from it, and
never by round 0's or round 1's evaluation. The report, the CLI's JSON and a resumed run still work on
the empty evaluations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_inprocess import rlaif  # noqa: E402

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "rlcd_instructions.yaml"


def _events(run_dir: Path) -> list[tuple[str, object]]:
    events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seq = [(e["event"], e.get("stage") or e.get("model") or e.get("engines")) for e in events]
    return [s for s in seq if s[0] in ("engine_start", "engines_released", "stage_start", "stage_skipped")]


def test_an_eval_that_measures_nothing_starts_no_engine(tmp_path, tiny_model_dir):
    overrides = [
        f"output_dir={tmp_path / 'runs'}",
        f"policy.path={tiny_model_dir}",
        "prompts.limit=4",
        "feedback.chunk_size=4",
        "feedback.options.sampling.max_tokens=8",
        "feedback.options.num_generations=1",
        "eval.instructions=null",
        "engine.kv_cache_gb=0.25",
        "rounds=1",
        "dpo.max_steps=1",
        "dpo.per_device_train_batch_size=2",
        "health.min_pairs=0",
    ]
    res = rlaif("run", str(PIPELINE), *overrides)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    run_dir = Path(out["run_dir"])
    assert _events(run_dir) == [
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
