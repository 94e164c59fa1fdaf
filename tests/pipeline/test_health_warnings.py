"""Results that mean nothing are warned about (logic on hand-written run directories, and the real
``rlaif report`` CLI): a win-rate judge at chance position consistency, a significant paired drop vs the
previous round (code samples, pass@k problems, instructions), a judge invalid rate creeping up; and
``health.warnings_as_errors`` turns them into a failed health check naming round, stage and figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from rlaif.config.health import HealthConfig
from rlaif.pipeline.health import HealthCheckFailed, write_status
from rlaif.pipeline.manifest import write_manifest
from rlaif.pipeline.result_warnings import find_warnings, raise_on_warnings
from rlaif.pipeline.stage_kinds import PlannedStage

sys.path.insert(0, str(Path(__file__).parent))
from report_html import Report, rlaif_report  # noqa: E402


def stage(run_dir: Path, name: str, summary: dict, samples: list[dict] | None = None) -> PlannedStage:
    d = run_dir / name
    d.mkdir(parents=True, exist_ok=True)
    write_manifest(
        d, {"stage": name, "config_hash": "x", "input_hashes": {}, "wall_s": 1.0, "summary": summary}
    )
    if samples is not None:
        (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in samples))
    kind = "eval" if name.endswith("/eval") else name.rpartition("/")[2]
    return PlannedStage(name, kind, 0)


def code_rows(passed: list[list[bool]]) -> list[dict]:
    return [
        {"kind": "code", "id": f"t{i}", "sample": k, "passed": ok}
        for i, samples in enumerate(passed)
        for k, ok in enumerate(samples)
    ]


def consistency_run(run_dir: Path, consistency: float) -> list[PlannedStage]:
    return [
        stage(run_dir, "round_0/eval", {"metrics": {"round": 0, "label": "round_0"}}),
        stage(run_dir, "round_1/eval", {"metrics": {"round": 1, "label": "round_1", "win_rate_vs_previous": 0.5,
                                                    "win_rate_n": 8, "judge_invalid_rate": 0.0,
                                                    "judge_position_consistency": consistency}}),
    ]  # fmt: skip


def test_a_judge_at_chance_is_warned_about_naming_round_stage_and_figure(tmp_path):
    plan = consistency_run(tmp_path, 0.0)
    (w,) = find_warnings(tmp_path, plan, HealthConfig())
    assert w["check"] == "judge_consistency" and w["stage"] == "round_1/eval" and w["round"] == "round_1"
    assert w["message"].startswith("round_1/eval: win-rate judge position consistency 0.0% (n=8)")
    assert "win rate 50.0% means nothing" in w["message"]
    assert find_warnings(tmp_path, consistency_run(tmp_path, 0.9), HealthConfig()) == []
    assert find_warnings(tmp_path, plan, HealthConfig(min_judge_consistency=None)) == []


def test_a_significant_code_drop_is_warned_per_sample_and_per_problem(tmp_path):
    before = stage(tmp_path, "round_0/eval", {"metrics": {}}, code_rows([[True, True]] * 8))
    after = stage(tmp_path, "round_1/eval", {"metrics": {}}, code_rows([[False, False]] * 8))
    found = find_warnings(tmp_path, [before, after], HealthConfig())
    assert [w["check"] for w in found] == ["drop", "drop"]
    assert (
        "pass@1 (per sample) fell vs the previous round: 16 newly fail, 0 newly pass of 16"
        in found[0]["message"]
    )
    assert "pass@k (problems solved) fell" in found[1]["message"] and "of 8 paired" in found[1]["message"]
    # one problem lost of eight is no significant drop; nor is a rise
    small = stage(tmp_path, "round_1/eval", {"metrics": {}}, code_rows([[False, False]] + [[True, True]] * 7))
    assert find_warnings(tmp_path, [before, small], HealthConfig()) == []
    assert find_warnings(tmp_path, [after, before], HealthConfig()) == []
    assert find_warnings(tmp_path, [before, after], HealthConfig(drop_p_value=None)) == []
    # a bad problem's samples (left out of pass@k) are left out of the pairing too: by their status,
    # since the evaluation writes them as passed: false, like real failures
    bad = code_rows([[False, False]] * 8)
    for row in bad:
        row.update(passed=False, status="bad_problem")
    broken = stage(tmp_path, "round_1/eval", {"metrics": {}}, bad)
    assert find_warnings(tmp_path, [before, broken], HealthConfig()) == []


def test_an_instruction_drop_uses_the_evaluations_paired_sign_test(tmp_path):
    change = {"paired": 40, "gained": 1, "lost": 12, "sign_test_p": 0.00342, "unmatched": 0}
    plan = [stage(tmp_path, "round_2/eval", {"metrics": {"instruction_change_vs_previous": change}})]
    (w,) = find_warnings(tmp_path, plan, HealthConfig())
    assert w["check"] == "drop" and "instruction pass rate fell" in w["message"]
    assert "sign test p=0.00342 < health.drop_p_value 0.05" in w["message"]
    assert find_warnings(tmp_path, plan, HealthConfig(drop_p_value=0.001)) == []


def test_an_invalid_rate_creeping_up_across_rounds_is_warned(tmp_path):
    plan = [
        stage(tmp_path, f"round_{k}/feedback", {"counts": {"judgments": 100, "judgments_invalid": bad}})
        for k, bad in ((1, 5), (2, 10), (3, 14), (4, 20))
    ]
    found = find_warnings(tmp_path, plan, HealthConfig())
    assert [w["stage"] for w in found] == ["round_4/feedback"]  # 14% - 5% is within 0.1, 20% - 5% is not
    assert "feedback invalid rate 20.0% rose from 5.0%" in found[0]["message"]
    assert [w["stage"] for w in find_warnings(tmp_path, plan, HealthConfig(max_invalid_rate_rise=0.04))] == [
        "round_2/feedback", "round_3/feedback", "round_4/feedback"]  # fmt: skip


def test_warnings_as_errors_all_or_per_check(tmp_path):
    found = find_warnings(tmp_path, consistency_run(tmp_path, 0.25), HealthConfig())
    raise_on_warnings(found, HealthConfig())  # warnings only, by default
    raise_on_warnings(found, HealthConfig(warnings_as_errors=["drop"]))
    for setting in (True, ["judge_consistency"]):
        with pytest.raises(HealthCheckFailed) as err:
            raise_on_warnings(found, HealthConfig(warnings_as_errors=setting))
        assert err.value.stage == "round_1/eval"
        assert str(err.value).startswith(
            "round_1/eval: health check failed: win-rate judge position consistency 25.0%"
        )
    with pytest.raises(
        ValueError, match="unknown check 'judge' \\(known: judge_consistency, drop, invalid_rise\\)"
    ):
        HealthConfig(warnings_as_errors=["judge"])


def test_rlaif_report_shows_the_warning_block_and_prints_it_last(tmp_path):
    run_dir = tmp_path / "runs" / "warned"
    run_dir.mkdir(parents=True)
    config = {"name": "warned", "policy": {"path": "/models/p"}, "prompts": {"kind": "jsonl", "path": "p.jsonl"},
              "feedback": {"source": "self_rewarding"}, "rounds": 1}  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    write_status(run_dir, "ok")
    consistency_run(run_dir, 0.0)
    res = rlaif_report(run_dir)
    assert res.returncode == 0, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("warning: round_1/eval: win-rate judge position consistency 0.0%"), res.stderr
    page = Report((run_dir / "report.html").read_text())
    assert page.by_id["warnings"]["attrs"]["data-count"] == "1"
    assert "round_1/eval: win-rate judge position consistency 0.0%" in page.text_of("warnings")
    assert "1 warning(s) below" in page.text_of("status")
    assert json.loads((run_dir / "metrics.json").read_text())["warnings"][0]["check"] == "judge_consistency"

    # the thresholds are the run's own (config.yaml): turned off, no warning block
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump({**config, "health": {"min_judge_consistency": None}})
    )
    res = rlaif_report(run_dir)
    assert res.returncode == 0 and "warning:" not in res.stderr
    assert "warnings" not in Report((run_dir / "report.html").read_text()).by_id


def test_a_feedback_labeller_ignoring_the_answers_is_warned_about(tmp_path):
    """rl_cai's labeller at 4% position consistency (Qwen2.5-Coder-0.5B as a P(A)/P(B) labeller did
    this): its debiased labels sit near 0.5, the pairs stage drops nearly all, and the run said nothing."""

    def feedback(consistency: float) -> list[PlannedStage]:
        counts = {"judgments": 200, "judgments_invalid": 0, "position_consistency": consistency}
        return [stage(tmp_path, "round_1/feedback", {"counts": counts})]

    (w,) = find_warnings(tmp_path, feedback(0.04), HealthConfig())
    assert w["check"] == "judge_consistency" and w["stage"] == "round_1/feedback"
    assert w["message"] == (
        "round_1/feedback: feedback judge position consistency 4.0% (n=200 judgments) < "
        "health.min_judge_consistency 0.6; chance is 50%, so its labels follow the answers' order, not "
        "their content"
    )
    assert find_warnings(tmp_path, feedback(0.8), HealthConfig()) == []
    assert find_warnings(tmp_path, feedback(0.04), HealthConfig(min_judge_consistency=None)) == []
    with pytest.raises(HealthCheckFailed, match="feedback judge position consistency 4.0%"):
        raise_on_warnings(
            find_warnings(tmp_path, feedback(0.04), HealthConfig()), HealthConfig(warnings_as_errors=True)
        )
