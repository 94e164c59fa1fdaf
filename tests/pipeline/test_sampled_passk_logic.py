"""Sampled pass@k beside greedy pass@1, the logic: the per-problem pairing (hand-computed, with unequal
sample counts and missing problems counted, never paired by position), why it differs from the
per-sample pairing, the counts it is built from, the drop warning and the report's columns, and the
``eval.code_sampled`` config errors as one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_inprocess import rlaif

from rlaif.config.health import HealthConfig
from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError
from rlaif.pipeline.evaluation import _sampled_counts
from rlaif.pipeline.manifest import write_manifest
from rlaif.pipeline.report_view import build_view
from rlaif.pipeline.result_warnings import find_warnings
from rlaif.pipeline.stage_kinds import PlannedStage
from rlaif.records import Completion
from rlaif.tasks.base import Verdict
from rlaif.tasks.metric import Checked, paired_change, paired_problem_change, pass_at_k, passing_counts


def test_problems_are_paired_by_id_on_their_number_of_passing_samples():
    before = {"a": (4, 1), "b": (4, 3), "c": (4, 2), "d": (4, 0), "e": (3, 1), "f": (4, 4)}
    # listed in another order: pairing is by id, never by position
    after = {"g": (4, 2), "e": (4, 1), "d": (4, 1), "c": (4, 2), "b": (4, 1), "a": (4, 3)}
    change = paired_problem_change(before, after)
    # a: 1 -> 3 and d: 0 -> 1 rose, b: 3 -> 1 fell, c: 2 -> 2 tie; e has 3 samples before and 4 after
    # (not paired, counted); f only before and g only after (unmatched)
    assert change == {
        "paired": 4,
        "gained": 2,
        "lost": 1,
        "ties": 1,
        "sign_test_p": 1.0,  # 2 * (C(3,0) + C(3,1)) / 2^3 = 1
        "unequal_samples": 1,
        "unmatched": 2,
    }
    # six problems each gain one passing sample, none lose: p = 2 / 2^6
    six = paired_problem_change({f"p{i}": (10, 2) for i in range(6)}, {f"p{i}": (10, 3) for i in range(6)})
    assert (six["gained"], six["lost"], six["ties"], six["sign_test_p"]) == (6, 0, 0, 0.0312)
    assert paired_problem_change({}, {})["sign_test_p"] == 1.0


def test_one_problems_samples_count_once_not_k_times():
    """Per sample, one problem going 0/10 -> 10/10 looks like ten independent gains (p = 0.002); per
    problem it is one (p = 1): the samples of one problem share its difficulty."""
    before = {f"t#{k}": False for k in range(10)}
    after = {f"t#{k}": True for k in range(10)}
    assert paired_change(before, after)["sign_test_p"] == 0.00195
    per_problem = paired_problem_change({"t": (10, 0)}, {"t": (10, 10)})
    assert (per_problem["gained"], per_problem["sign_test_p"]) == (1, 1.0)


def _checked(key: str, index: int, passed: bool, status: str) -> Checked:
    return Checked(None, key, Completion(index=index, text="x"), Verdict(passed, float(passed), status))


def test_counts_leave_bad_problems_out_both_from_verdicts_and_from_rows():
    checked = [
        _checked("a", 0, True, "passed"), _checked("a", 1, False, "failed"), _checked("a", 2, True, "passed"),
        _checked("b", 0, False, "timeout"), _checked("b", 1, False, "failed"), _checked("b", 2, False, "failed"),
        _checked("z", 0, False, "bad_problem"), _checked("z", 1, False, "bad_problem"),
    ]  # fmt: skip
    assert passing_counts(checked) == {"a": (3, 2), "b": (3, 0)}
    summary = pass_at_k(checked, [1, 3])
    assert summary["pass@1"] == pytest.approx((2 / 3 + 0) / 2) and summary["pass@3"] == 0.5
    assert summary["bad_problems"] == 1 and summary["problems"] == 2
    rows = [
        {"kind": "code_sampled", "id": c.key, "sample": c.completion.index, "passed": c.verdict.passed,
         "status": c.verdict.status}
        for c in checked
    ] + [{"kind": "code", "id": "a", "sample": 0, "passed": False, "status": "failed"}]  # fmt: skip
    assert _sampled_counts(rows) == passing_counts(checked)  # the greedy row is not counted


def _eval_stage(run_dir: Path, name: str, metrics: dict) -> PlannedStage:
    d = run_dir / name
    d.mkdir(parents=True)
    write_manifest(d, {"stage": name, "config_hash": "x", "input_hashes": {}, "wall_s": 1.0,
                       "summary": {"metrics": metrics}})  # fmt: skip
    return PlannedStage(name, "eval", 0)


def test_a_significant_per_problem_drop_is_warned(tmp_path):
    drop = paired_problem_change({f"p{i}": (4, 3) for i in range(8)}, {f"p{i}": (4, 1) for i in range(8)})
    plan = [_eval_stage(tmp_path, "round_2/eval", {"code_sampled_change_vs_previous": drop})]
    (w,) = find_warnings(tmp_path, plan, HealthConfig())
    assert w["check"] == "drop" and w["stage"] == "round_2/eval"
    assert (
        "code sampled pass@k (per problem) fell vs the previous round: 8 pass fewer samples, 0 more of 8"
        in (w["message"])
    )
    assert find_warnings(tmp_path, plan, HealthConfig(drop_p_value=None)) == []
    rise = paired_problem_change({f"p{i}": (4, 1) for i in range(8)}, {f"p{i}": (4, 3) for i in range(8)})
    assert find_warnings(tmp_path, [_eval_stage(tmp_path, "round_3/eval", {"code_sampled_change_vs_start": rise})],
                         HealthConfig()) == []  # fmt: skip


def test_the_round_table_shows_sampled_pass_at_k_beside_greedy_pass_at_1():
    change = {"paired": 3, "gained": 1, "lost": 0, "ties": 2, "sign_test_p": 1.0, "unequal_samples": 0,
              "unmatched": 0}  # fmt: skip
    rounds = [
        {"round": 0, "label": "round 0", "pass@1": 0.5, "sampled_pass@10": 0.9, "sampled_pass@2": 0.7,
         "sampled_pass@1": 0.4, "mean_response_tokens": 20.0},
        {"round": 1, "label": "round 1", "pass@1": 0.5, "sampled_pass@10": 1.0, "sampled_pass@2": 0.8,
         "sampled_pass@1": 0.45, "mean_response_tokens": 21.0, "code_sampled_change_vs_start": change},
    ]  # fmt: skip
    table = build_view({"rounds": rounds})["rounds"]
    assert table["head"][:5] == ["round", "pass@1", "sampled_pass@1", "sampled_pass@2", "sampled_pass@10"]
    assert [c["text"] for c in table["rows"][1][:5]] == ["round 1", "50.0%", "45.0%", "80.0%", "100.0%"]
    assert table["notes"] == [
        "round 1, held-out code sampled vs the start policy, per problem: 1 pass more samples, 0 fewer, "
        "2 as many of 3 (exact sign test p=1.0)."
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.code_sampled.samples=4", "eval.code_sampled.ks=[1, 8]"],
         "field 'eval.code_sampled.ks': Value error, every k must be between 1 and samples=4; got [8]"),
        # the default ks [1, 5, 10] need 10 samples
        (["eval.code_sampled.samples=4"], "field 'eval.code_sampled.ks'"),
        (["eval.code_sampled.temperature=0"], "field 'eval.code_sampled.temperature': Input should be greater"),
        (["eval.code_sampled.temprature=0.5"], "unknown key 'eval.code_sampled.temprature' (did you mean 'eval.code_sampled.temperature'?)"),
        (["eval.code_problems=null"], "eval.code_sampled needs eval.code_problems"),
    ],
)  # fmt: skip
def test_code_sampled_config_errors_are_one_line_naming_the_field(run_config, tmp_path, overrides, message):
    path = run_config.write(
        run_config.base()
        | {"eval": {"code_problems": {"kind": "demo_code"}, "code_sampled": {"samples": 10}}}
    )
    assert load_run_config(path).eval.code_sampled.ks == [1, 5, 10]
    with pytest.raises(ConfigError) as err:
        load_run_config(path, overrides)
    assert message in str(err.value) and str(path) in str(err.value)
    res = rlaif("validate", str(path), *overrides)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
