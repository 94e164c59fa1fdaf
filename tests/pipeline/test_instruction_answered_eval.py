"""The 'passed AND answered' pairing of held-out instruction evaluations, and its line in the report."""

from __future__ import annotations

from rlaif.pipeline.instruction_eval import _outcomes
from rlaif.pipeline.report_view import _rounds
from rlaif.tasks.metric import paired_change


def _row(i, passed, answered=None, **extra):
    row = {"kind": "instructions", "id": f"p{i}", "sample": 0, "prompt_hash": "h", "passed": passed, **extra}
    if answered is not None:
        row["answered"] = answered
    return row


def test_passing_non_answers_count_as_passes_but_not_as_answered_passes():
    rows = [_row(0, True, False), _row(1, True, True), _row(2, False, True)]
    assert list(_outcomes(rows).values()) == [True, True, False]
    assert list(_outcomes(rows, answered=True).values()) == [False, True, False]


def test_rows_written_before_rows_said_whether_they_answer_are_unmatched_never_failures():
    old = [_row(0, True), _row(1, False)]  # no 'answered' field
    new = [_row(0, True, True), _row(1, True, True)]
    change = paired_change(_outcomes(old, answered=True), _outcomes(new, answered=True))
    assert change == {"paired": 0, "gained": 0, "lost": 0, "sign_test_p": 1.0, "unmatched": 2}


def test_other_sets_are_kept_apart():
    rows = [_row(0, True, True), _row(0, False, False, set="paraphrased")]
    assert list(_outcomes(rows, "paraphrased", answered=True).values()) == [False]


def test_the_report_names_the_answered_change_beside_the_pass_change():
    change = {"paired": 400, "gained": 30, "lost": 10, "sign_test_p": 0.002}
    strict = {"paired": 400, "gained": 12, "lost": 20, "sign_test_p": 0.22}
    table = _rounds(
        [
            {
                "round": 0,
                "label": "start",
                "instruction_pass_rate": 0.2,
                "instruction_pass_answered_rate": 0.15,
            },
            {
                "round": 1,
                "label": "round 1",
                "instruction_pass_rate": 0.25,
                "instruction_pass_answered_rate": 0.13,
                "instruction_change_vs_start": change,
                "instruction_answered_change_vs_start": strict,
            },
        ]
    )
    assert "instruction_pass_answered_rate" in table["head"]
    assert ["13.0%" in str(cell) for cell in table["rows"][1]].count(True) == 1
    assert any("30 samples newly pass, 10 newly fail of 400" in n for n in table["notes"])
    assert any(
        "passed AND answered the request: 12 samples newly, 20 no longer of 400" in n for n in table["notes"]
    )
