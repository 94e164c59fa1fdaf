"""Broken problem files are reported as broken problems, not blamed on the samples (``rlaif eval-code``
end to end, real sandbox): a check() without asserts, a test with a NameError, a wrong entry point, an
MBPP assert the reference fails; and a record missing a field names that field."""

from __future__ import annotations

import json

import pytest

from rlaif.cli import main

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'
GOOD_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n"


def _he(task_id: str, test: str = GOOD_TEST, entry: str = "add") -> dict:
    return {"task_id": task_id, "prompt": PROMPT, "canonical_solution": "    return a + b\n", "test": test,
            "entry_point": entry}  # fmt: skip


PROBLEMS = [
    _he("Good/0"),
    _he("NoAssert/1", test="def check(candidate):\n    candidate(2, 3)\n"),
    _he("NameError/2", test="def check(candidate):\n    assert candidate(2, 3) == expected\n"),
    _he("WrongEntry/3", entry="plus"),
    {
        "task_id": 4,
        "text": "Add two numbers.",
        "code": "def add(a, b):\n    return a + b\n",
        "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 5"],
        "test_setup_code": "",
    },  # fmt: skip
    {
        "task_id": 5,
        "text": "Add two numbers.",
        "code": "def add(a, b):\n    return a + b\n",
        "test_list": ["assert add(1, 2) == 3"],
        "test_setup_code": "",
    },  # fmt: skip
]
RIGHT = {"Good/0": "    return a + b\n", "5": "def add(a, b):\n    return a + b\n"}
WRONG = {"Good/0": "    return a - b\n", "5": "def add(a, b):\n    return a - b\n"}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval(capsys, tmp_path, *extra):
    problems = _write(tmp_path / "problems.jsonl", PROBLEMS)
    samples = []
    for p in PROBLEMS:
        tid = str(p["task_id"])
        whole = "text" in p
        samples.append({"task_id": tid, "completion": RIGHT.get(tid, p.get("code") or "    return a + b\n")})
        samples.append({"task_id": tid, "completion": WRONG.get(tid, "def add(a, b):\n    return 0\n" if whole
                                                                  else "    return 0\n")})  # fmt: skip
    out = tmp_path / "results.jsonl"
    code = main(["eval-code", "--problems", str(problems), "--samples", str(_write(tmp_path / "s.jsonl", samples)),
                 "--k", "1,2", "--out", str(out), "--no-progress", "--workers", "2", *extra])  # fmt: skip
    captured = capsys.readouterr()
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return code, captured, rows


def test_broken_problems_get_their_own_status_and_are_left_out_of_pass_at_k(capsys, tmp_path):
    code, captured, rows = _eval(capsys, tmp_path)
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    reasons = summary["bad_problem_reasons"]
    assert summary["bad_problems"] == 4 and set(reasons) == {"NoAssert/1", "NameError/2", "WrongEntry/3", "4"}
    assert "returns None passes" in reasons["NoAssert/1"]
    assert (
        "NameError" in reasons["NameError/2"] and "reference solution does not pass" in reasons["NameError/2"]
    )
    assert "reference solution does not pass" in reasons["WrongEntry/3"] and "1/2" in reasons["4"]
    # only the two sound problems count: each has one right and one wrong sample
    assert summary["problems"] == 2 and summary["pass@1"] == pytest.approx(0.5) and summary["pass@2"] == 1.0
    assert summary["status_counts"]["bad_problem"] == 8 and summary["samples"] == 12
    assert [r["status"] for r in rows].count("bad_problem") == 8 and len(rows) == 12
    bad = next(r for r in rows if r["task_id"] == "NoAssert/1")
    assert bad["passed"] is None and "returns None" in bad["diagnostics"]


def test_without_validation_the_broken_tests_are_blamed_on_the_samples(capsys, tmp_path):
    """What --validate prevents: the wrong answer passes a check() without asserts, and every sample of
    a problem with a NameError in its test fails."""
    code, captured, rows = _eval(capsys, tmp_path, "--no-validate")
    assert code == 0 and "bad_problems" not in json.loads(captured.out)
    by_task: dict[str, list[bool]] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r["passed"])
    assert by_task["NoAssert/1"] == [True, True] and by_task["NameError/2"] == [False, False]


@pytest.mark.parametrize("field", ["entry_point", "test", "prompt"])
def test_a_humaneval_record_missing_a_field_names_that_field(capsys, tmp_path, field):
    record = {k: v for k, v in _he("X/0").items() if k != field}
    problems = _write(tmp_path / "p.jsonl", [record])
    samples = _write(tmp_path / "s.jsonl", [{"task_id": "X/0", "completion": "x"}])
    code = main(["eval-code", "--problems", str(problems), "--samples", str(samples), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: {problems}:1: HumanEval field '{field}' is missing"
