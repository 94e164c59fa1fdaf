"""Health-check logic on stage summaries (the real-run proof is tests/pipeline/test_run_health.py)."""

from __future__ import annotations

import pytest

from rlaif.config.health import HealthConfig
from rlaif.pipeline.health import HealthCheckFailed, invalid_reasons, read_status, write_status
from rlaif.pipeline.stage_kinds import KINDS

KIND_OF = {"feedback": "feedback", "pairs": "pairs", "eval": "eval", "train": "dpo"}


def check_stage(stage: str, summary: dict, health: HealthConfig) -> None:
    """The health check the registry gives the stage's kind (``final/train``: the final RL round)."""
    kind = "final_rl" if stage == "final/train" else KIND_OF[stage.rpartition("/")[2]]
    KINDS[kind].check(stage, summary, health)


def test_invalid_reasons_group_similar_reasons_and_rank_them():
    judgments = [
        {"status": "invalid", "invalid_reason": "captured '7x', which is not a number"},
        {"status": "invalid", "invalid_reason": "captured 'y', which is not a number"},
        {"status": "invalid", "invalid_reason": "no score found"},
        {"status": "ok", "invalid_reason": None},
    ]
    assert invalid_reasons(judgments) == {"captured '…', which is not a number": 2, "no score found": 1}


def test_all_invalid_judge_fails_with_the_commonest_reason():
    summary = {"counts": {"judgments": 40, "judgments_invalid": 40, "pairs_out": 0, "prompts_in": 10},
               "invalid_reasons": {"no score found": 38, "empty output": 2}}  # fmt: skip
    with pytest.raises(HealthCheckFailed) as err:
        check_stage("round_2/feedback", summary, HealthConfig())
    msg = str(err.value)
    assert msg.startswith("round_2/feedback: health check failed: 40 of 40 judgments invalid (100%")
    assert "health.max_judge_invalid_rate 0.5" in msg and "(38x): no score found" in msg
    check_stage("round_2/feedback", summary, HealthConfig(max_judge_invalid_rate=None, min_pairs=0))


@pytest.mark.parametrize(
    ("stage", "summary", "message"),
    [
        ("round_1/feedback", {"counts": {"pairs_out": 0, "prompts_in": 5}, "drops": {"tie": 4, "too_long": 1}},
         "0 pairs made from 5 prompts (< health.min_pairs 1); commonest drop reason (4x): tie"),
        ("round_1/pairs", {"counts": {"pairs_in": 3, "pairs_kept": 0}, "drops": {"length_ratio": 3}},
         "0 of 3 pairs kept after filtering (< health.min_pairs 1); commonest filter reason (3x): length_ratio"),
        ("round_3/eval", {"metrics": {"judge_invalid_rate": 0.75, "judge_invalid_reasons": {"no answer token": 6}}},
         "win-rate judge: 75% of judgments invalid"),
    ],
)  # fmt: skip
def test_each_check_names_stage_and_cause(stage, summary, message):
    with pytest.raises(HealthCheckFailed) as err:
        check_stage(stage, summary, HealthConfig())
    assert str(err.value).startswith(f"{stage}: health check failed") and message in str(err.value)


def test_healthy_stages_pass():
    check_stage(
        "round_1/feedback",
        {"counts": {"judgments": 10, "judgments_invalid": 5, "pairs_out": 2}},
        HealthConfig(),
    )
    check_stage("round_1/eval", {"metrics": {"judge_invalid_rate": None}}, HealthConfig())
    check_stage("final/train", {"counts": {}}, HealthConfig())


def test_status_keeps_the_config_file(tmp_path):
    assert read_status(tmp_path)["status"] == "unknown"
    write_status(tmp_path, "running", config_file="run.yaml")
    write_status(tmp_path, "failed", "round_1/pairs", "why")
    status = read_status(tmp_path)
    assert status["status"] == "failed" and status["config_file"] == "run.yaml" and status["reason"] == "why"
