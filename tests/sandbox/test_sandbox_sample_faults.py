"""Whatever a sample causes is that sample's failure, never ``sandbox_error`` (which earns no penalty
in RL) and never an error that stops results from being written: each class is mounted for real,
next to an honest program on the same test, so a test that fails everything cannot pass."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlaif.sandbox import Job, call_test, statement_test
from rlaif.sandbox.codec import Unsafe, decode, encode
from rlaif.sandbox.verdict import outputs_match


def _run(pool, program: str, test):
    return pool.run_one(Job(program=program, tests=[test]))


def test_huge_ints_where_floats_are_expected_fail_the_sample(pool):
    # MBPP+ 618/252/261/615 expect floats; an int beyond float range made the tolerance check raise
    for expected, wrong in ((1.5, "10**400"), ([0.5, 2.0], "[10**400, 2]"), ((1.0, 2.0), "(1, 2**1100)")):
        test = call_test("f", [], expected)
        res = _run(pool, f"def f():\n    return {wrong}\n", test)
        assert res.status == "failed", res.diagnostics
        assert _run(pool, f"def f():\n    return {expected!r}\n", test).passed


def test_an_expected_infinity_accepts_only_itself(pool):
    # MBPP+ 300: ``inf <= inf`` in the tolerance check let any finite float pass
    assert not outputs_match(1.0, float("inf"), 0.0) and not outputs_match(-1e308, float("-inf"), 1e-6)
    assert outputs_match(float("inf"), float("inf"), 0.0)
    test = call_test("f", [], [float("inf"), 1.0])
    assert _run(pool, "def f():\n    return [1e308, 1.0]\n", test).status == "failed"
    assert _run(pool, "def f():\n    return [float('inf'), 1.0]\n", test).passed


def test_a_value_whose_keys_all_hash_alike_is_refused_in_linear_time(pool):
    flood = {1 + k * (2**61 - 1) for k in range(3000)}
    started = time.perf_counter()
    try:
        decode(encode(flood))
        raise AssertionError("a hash-flooding set was decoded")
    except Unsafe:
        pass
    assert time.perf_counter() - started < 0.5  # building the set itself takes seconds
    assert decode(encode(set(range(3000)))) == set(range(3000))
    program = "def f():\n    return {1 + k * (2**61 - 1) for k in range(3000)}\n"
    res = _run(pool, program, call_test("f", [], {1, 2}))
    assert res.status == "failed" and "hash" in res.diagnostics, res.diagnostics
    res = _run(pool, program, statement_test("assert f() == {1, 2}"))
    assert res.status == "failed" and "hash" in res.diagnostics, res.diagnostics
    assert _run(pool, "def f():\n    return {1, 2}\n", call_test("f", [], {1, 2})).passed


def test_a_lone_surrogate_in_what_a_sample_reports_can_always_be_written(pool):
    programs = [
        "def f():\n    raise ValueError('\\ud800 boom')\n",
        "print('\\udcff out')\nraise KeyError('\\ud800')\n",
        "def f():\n    print('\\ud800')\n    return '\\ud800'\n",
    ]
    for program in programs:
        for test in (call_test("f", [], "x"), statement_test("assert f() == 'x'")):
            res = _run(pool, program, test)
            assert res.status in ("failed", "runtime_error"), res.diagnostics
            json.dumps(res.model_dump(), ensure_ascii=False).encode("utf-8")  # raises on a surrogate


def test_eval_code_writes_every_result_whatever_the_samples_report(tmp_path):
    # a lone surrogate in an exception message (and in output) once made writing results fail after
    # every sample ran: no results file at all
    from rlaif.code.evaluate import run_eval_code

    problems = Path(__file__).parents[1] / "code" / "assets" / "humaneval_mini.jsonl"
    samples = tmp_path / "samples.jsonl"
    completions = ["    print('\\udcff')\n    raise ValueError('\\ud800')\n", "    return a + b\n"]
    samples.write_text(
        "".join(json.dumps({"task_id": "Mini/0", "completion": c}) + "\n" for c in completions)
    )
    summary = run_eval_code(problems, samples, ks=(1,), workers=1, out=tmp_path / "out.jsonl", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["status"] for r in lines] == ["runtime_error", "passed"], summary
    assert "ValueError" in lines[0]["diagnostics"]
