"""Problem loaders: every format, CRLF handling, and errors that name file, line and field."""

from __future__ import annotations

import gzip
import json

import pytest

from rlaif.code.jobs import CODE_STOP, build_job, extract_code, problem_tests, program_for
from rlaif.code.problems import load_problems, mbppplus_args
from rlaif.errors import RecordError, RlaifError


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mbpp_loads_with_crlf_normalised(assets):
    problems = load_problems(assets / "mbpp_mini.jsonl")
    assert [p.task_id for p in problems] == ["11", "12", "13", "14", "15", "16"]
    p = problems[0]
    assert p.source_format == "mbpp" and len(p.tests) == 3
    assert "\r" not in p.reference_solution and p.reference_solution.startswith("def remove_Occ(s,ch):")
    assert p.prompt.startswith("Write a python function to remove first and last occurrence")


def test_full_mbpp_and_sanitized_and_gzip(shared_data, tmp_path):
    full = load_problems(shared_data / "mbpp" / "mbpp.jsonl")
    assert len(full) == 974
    sanitized = load_problems(shared_data / "mbpp" / "sanitized-mbpp.json")
    assert len(sanitized) == 427 and all(p.source_format == "mbpp" for p in sanitized)
    gz = tmp_path / "mbpp.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write((shared_data / "mbpp" / "mbpp.jsonl").read_text())
    assert [p.task_id for p in load_problems(gz)] == [p.task_id for p in full]


def test_mbppplus_loads_inputs_and_restores_types(shared_data):
    problems = load_problems(shared_data / "evalplus" / "MbppPlus-v0.2.0.jsonl.gz")
    assert len(problems) == 378
    p = next(p for p in problems if p.task_id == "Mbpp/2")
    assert p.source_format == "mbppplus" and p.entry_point == "similar_elements"
    assert p.metadata["n_base_inputs"] == 3 and len(p.inputs) > 3
    assert p.inputs[0] == [[3, 4, 5, 6], [5, 7, 4, 10]]  # stored as JSON; types restored per call
    assert mbppplus_args("Mbpp/2", [[3, 4], [5]]) == [(3, 4), (5,)]
    assert mbppplus_args("Mbpp/124", [1, 2]) == [1.0, 2 + 0j]
    assert mbppplus_args("Mbpp/722", [{"a": [1, 2]}, 3]) == [{"a": (1, 2)}, 3]
    assert mbppplus_args("Mbpp/999", [[1]]) == [[1]]
    base_only = load_problems(shared_data / "evalplus" / "MbppPlus-v0.2.0.jsonl.gz", plus_inputs=False)
    assert len(base_only[0].inputs) == base_only[0].metadata["n_base_inputs"]


def test_humaneval_check_is_split_into_value_tests(assets):
    problems = {p.task_id: p for p in load_problems(assets / "humaneval_mini.jsonl")}
    tests, setup = problem_tests(problems["Mini/0"])
    assert [t.kind for t in tests] == ["stmt"] * 3  # one per assert, run in the worker (not 'assert True')
    assert [t.expr for t in tests] == ["candidate(2, 3)", "candidate(-1, 1)", "candidate(0, 0)"]
    assert "candidate = add" in setup and "METADATA" in setup
    loop_tests, _ = problem_tests(problems["Mini/1"])
    assert [t.kind for t in loop_tests] == ["stmt"] and "check(squares)" in loop_tests[0].code
    mixed, _ = problem_tests(problems["Mini/2"])
    assert [(t.op, t.expected) for t in mixed] == [("<", 1e-9), ("==", 4.0), ("==", 1.5)]
    job = build_job(problems["Mini/0"], "    return a + b\n")
    assert job.program.startswith("def add(a: int, b: int)") and job.program.endswith("return a + b\n")


def test_chat_completions_contribute_their_first_code_block(assets):
    [p] = load_problems(assets / "mbpp_mini.jsonl")[:1]
    text = "Here you go:\n```python\ndef f():\n    return 1\n```\nand more ```py\nx```"
    assert extract_code(text) == "def f():\n    return 1\n"
    assert program_for(p, text) == "def f():\n    return 1\n"
    assert extract_code("def g(): pass") == "def g(): pass"


def _stopped(text: str) -> str:
    """What vLLM returns with ``stop=CODE_STOP``: the text up to the first stop string, without it."""
    cuts = [text.find(s) for s in CODE_STOP if s in text]
    return text[: min(cuts)] if cuts else text


@pytest.mark.parametrize(
    ("answer", "cut"),
    [
        # the usual chat answer: a block, a blank line, then prose and a usage example nobody runs
        ("```python\ndef f():\n    return 1\n```\n\nIt returns 1.\n\n```python\nprint(f())\n```\n", True),
        ("Here you go:\n\n```python\ndef f():\n\n    return 1\n```\n\n### Explanation\n1. ...", True),
        # an unlabelled opening fence is followed by code, not by a blank line: never cut before the code
        ("Sure:\n```\ndef f():\n    return 1\n```\n\nDone.", True),
        # a closing fence followed by prose on the next line or by the end: not stopped at, same program
        ("```python\ndef f():\n    return 1\n```\nThat is all.", False),
        ("```python\ndef f():\n    return 1\n```", False),
    ],
)
def test_stopping_at_the_first_blocks_end_runs_the_same_program(assets, answer, cut):
    """Code generation stops at CODE_STOP: what is run must be what the whole answer would have run."""
    [p] = load_problems(assets / "mbpp_mini.jsonl")[:1]
    stopped = _stopped(answer)
    program = program_for(p, answer)
    assert "return 1" in program and program_for(p, stopped).rstrip() == program.rstrip()
    assert (len(stopped) < len(answer)) is cut
    assert not cut or ("print(f())" not in stopped and "Explanation" not in stopped and "Done" not in stopped)


def test_missing_field_names_file_line_and_field(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"task_id": 1, "text": "t", "test_list": ["assert 1"], "code": ""},
                                         {"task_id": 2, "text": "t", "code": "", "test_list": "assert 1"}])  # fmt: skip
    with pytest.raises(RecordError, match=r"p\.jsonl:2: MBPP field 'test_list' must be a list of strings"):
        load_problems(path)
    he = _write(tmp_path / "he.jsonl", [{"task_id": "a", "test": "def check(c): pass", "entry_point": "f"}])
    with pytest.raises(RecordError, match=r"he\.jsonl:1: HumanEval field 'prompt' is missing"):
        load_problems(he)


def test_broken_test_is_reported_at_load_time(tmp_path):
    path = _write(
        tmp_path / "p.jsonl", [{"task_id": 7, "text": "t", "code": "", "test_list": ["assert f(1) =="]}]
    )
    with pytest.raises(RecordError, match=r"p\.jsonl:1: MBPP field 'test_list\[0\]'.*not valid Python"):
        load_problems(path)


def test_duplicate_ids_and_bad_json_and_empty_files(tmp_path):
    row = {"task_id": 1, "text": "t", "code": "", "test_list": ["assert 1"]}
    with pytest.raises(RecordError, match=r"d\.jsonl:2: duplicate task_id '1' \(first at .*d\.jsonl:1\)"):
        load_problems(_write(tmp_path / "d.jsonl", [row, row]))
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"task_id": 1,\n')
    with pytest.raises(RecordError, match=r"b\.jsonl:1: not valid JSON"):
        load_problems(bad)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(RecordError, match="no problems"):
        load_problems(empty)


def test_native_format_and_its_errors(tmp_path):
    good = {"task_id": "n1", "prompt": "Write f.", "tests": ["assert f() == 1"]}
    [p] = load_problems(_write(tmp_path / "n.jsonl", [good]))
    assert p.source_format == "native" and p.tests == ["assert f() == 1"]
    with pytest.raises(RecordError, match=r"x\.jsonl:1: CodeProblem field 'bogus'"):
        load_problems(_write(tmp_path / "x.jsonl", [{**good, "bogus": 1}]))
    with pytest.raises(RecordError, match="has no tests"):
        load_problems(_write(tmp_path / "y.jsonl", [{"task_id": "n2", "prompt": "p"}]))


def test_mbppplus_tests_need_expected_outputs_first(shared_data):
    p = load_problems(shared_data / "evalplus" / "MbppPlus-v0.2.0.jsonl.gz")[0]
    with pytest.raises(RlaifError, match="expected outputs .* not computed"):
        problem_tests(p)
