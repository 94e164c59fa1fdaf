"""Typed stage results: what a stage returns is what the manifest stores and what the next stage reads,
and the runner re-runs a stage whose stored summary it cannot read back rather than trust it."""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.pipeline.context import Policy, RunContext
from rlaif.pipeline.runner import Runner
from rlaif.pipeline.summary import (
    FeedbackOutputs,
    FeedbackSummary,
    PairsOutputs,
    PairsSummary,
    TrainOutputs,
    TrainSummary,
    next_policy,
    summary_from_json,
)


def test_a_summary_round_trips_through_json_with_the_report_keys():
    s = FeedbackSummary(
        outputs=FeedbackOutputs(pairs="p.jsonl", judgments="j.jsonl"),
        counts={"prompts_in": 4, "pairs_out": 3, "position_consistency": 0.5},
        drops={"tie": 1},
    )
    data = s.to_json()
    assert data["outputs"] == {"pairs": "p.jsonl", "judgments": "j.jsonl"}  # unset paths left out
    assert "stats" not in data and data["drops"] == {"tie": 1}
    back = summary_from_json(FeedbackSummary, json.loads(json.dumps(data)))
    assert back == s and isinstance(back.counts["position_consistency"], float)
    assert summary_from_json(FeedbackSummary, {**data, "surprise": 1}) is None
    assert summary_from_json(PairsSummary, data) is None  # a feedback summary is not a pairs summary


def test_the_next_policy_comes_from_the_train_summary():
    start = Policy(Path("base"))
    merged = TrainSummary(outputs=TrainOutputs(base_model="b", merged_model="m"))
    adapter = TrainSummary(outputs=TrainOutputs(base_model="b", adapter="a"))
    skipped = TrainSummary(counts={"pairs": 0, "steps": 0}, skipped="no pairs")
    assert next_policy(merged, start) == Policy(Path("m"))
    assert next_policy(adapter, start) == Policy(Path("b"), Path("a"))
    assert next_policy(skipped, start) is start


def _runner(run_config) -> tuple[Runner, RunContext]:
    runner = Runner(run_config(feedback={"source": "rlcd"}))
    return runner, RunContext(run=runner.run_config, run_dir=runner.run_dir, policy=Policy(Path("m")))


def test_stage_skips_a_finished_stage_and_reruns_one_whose_summary_does_not_fit(run_config):
    runner, ctx = _runner(run_config)
    runs = []

    def body(stage_dir: Path) -> PairsSummary:
        runs.append(stage_dir)
        (stage_dir / "pairs.jsonl").write_text("")
        return PairsSummary(
            outputs=PairsOutputs(pairs=str(stage_dir / "pairs.jsonl")), counts={"pairs_kept": 1}
        )

    first = runner.stage(ctx, "round_1/pairs", {"a": 1}, {}, body)
    again = runner.stage(ctx, "round_1/pairs", {"a": 1}, {}, body)
    assert len(runs) == 1 and again == first and runner.skipped == ["round_1/pairs"]
    assert isinstance(runner.summaries["round_1/pairs"], PairsSummary)
    manifest_file = runner.run_dir / "round_1" / "pairs" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    assert manifest["summary"] == first.to_json()
    manifest["summary"]["outputs"] = {"pairs": 3}  # not a path: an older or hand-edited manifest
    manifest_file.write_text(json.dumps(manifest))
    runner.stage(ctx, "round_1/pairs", {"a": 1}, {}, body)
    assert len(runs) == 2 and runner.executed == ["round_1/pairs", "round_1/pairs"]
