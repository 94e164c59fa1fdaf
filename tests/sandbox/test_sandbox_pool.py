"""The pool on real programs: statuses, per-test results, limits, recovery, and the degraded mode."""

from __future__ import annotations

import os
import signal

import pytest
from sandbox_testlib import run, sandbox_processes

from rlaif.sandbox import (
    Job,
    Limits,
    SandboxIsolationWarning,
    SandboxPool,
    assert_test,
    call_test,
    statement_test,
)


def test_partial_credit_is_per_test(pool):
    program = "def f(x):\n    return x * 2 if x < 3 else -1\n"
    res = run(pool, program, "assert f(1) == 2", "assert f(2) == 4", "assert f(3) == 6")
    assert res.status == "failed"
    assert res.per_test == ["passed", "passed", "failed"]
    assert (res.tests_passed, res.tests_total) == (2, 3)
    assert "test 3/3" in res.diagnostics and "got -1" in res.diagnostics
    assert res.metadata["attempts"] == 1


def test_syntax_error_names_the_line(pool):
    res = run(pool, "x = 1\ndef f(:\n    pass\n", "assert f() == 1")
    assert res.status == "syntax_error"
    assert "line 2" in res.diagnostics


def test_runtime_error_while_loading(pool):
    res = run(pool, "x = 1\ny = x / 0\n", "assert y == 1")
    assert res.status == "runtime_error"
    assert "ZeroDivisionError" in res.diagnostics and "line 2" in res.diagnostics


def test_exception_in_a_test_is_a_runtime_error_and_the_others_still_count(pool):
    program = "def f(x):\n    return 10 // x\n"
    res = run(pool, program, "assert f(0) == 1", "assert f(5) == 2")
    assert res.per_test == ["runtime_error", "passed"]
    assert res.status == "runtime_error"


def test_crash_mid_run_restarts_for_the_remaining_tests(pool):
    program = "import os\ndef f(x):\n    if x == 1:\n        os.kill(os.getpid(), 9)\n    return x\n"
    res = run(pool, program, "assert f(0) == 0", "assert f(1) == 1", "assert f(2) == 2")
    assert res.per_test == ["passed", "killed", "passed"]
    assert res.metadata["attempts"] == 2


def test_stdout_and_stderr_are_captured(pool):
    res = run(pool, "import sys\nprint('out here')\nprint('err here', file=sys.stderr)\n")
    assert res.status == "passed"
    assert res.stdout == "out here\n" and res.stderr == "err here\n"


def test_call_tests_compare_outputs_with_tolerance(pool):
    program = "def area(r):\n    return 3.14159 * r * r\n"
    tests = [call_test("area", [1], 3.1416, atol=1e-4), call_test("area", [2], 12.57, atol=1e-4)]
    res = pool.run_one(Job(program=program, tests=tests))
    assert res.per_test == ["passed", "failed"]


def test_collecting_outputs_returns_raw_values(pool):
    [raw] = pool.run_raw([Job(program="def f(a, b):\n    return (a, {b})\n", tests=[call_test("f", [1, 2])])])
    assert raw["tests"][0] == {"e": "val", "v": {"t": [1, {"s": [2]}]}}


def test_oversized_value_fails_without_flooding_the_driver(pool):
    res = run(pool, "def f():\n    return 'x' * 3_000_000\n", "assert f() == 'x'", "assert f()[:1] == 'x'")
    # the whole value goes to the worker, which takes the item: beyond max_value_bytes both fail
    assert res.per_test == ["failed", "failed"]
    assert "value too large" in res.diagnostics


def test_statement_tests_run_test_code(pool):
    program = "def sq(x):\n    return x * x\n"
    good = statement_test("for i in range(10):\n    assert sq(i) == i * i\n")
    bad = statement_test("for i in range(10):\n    assert sq(i) == i + i\n")
    res = pool.run_one(Job(program=program, tests=[good, bad]))
    assert res.per_test == ["passed", "failed"]
    assert res.metadata["in_process_verdicts"] == 0  # both were judged in the worker


def test_setup_code_runs_after_the_program(pool):
    job = Job(
        program="def f():\n    return BASE + 1\n", setup="BASE = 41", tests=[assert_test("assert f() == 42")]
    )
    assert pool.run_one(job).status == "passed"


def test_results_state_the_isolation_in_place(pool):
    res = run(pool, "pass")
    assert res.metadata["isolation"] == {k: v for k, v in pool.isolation.items() if k != "uid"}
    assert res.network_isolated == pool.isolation["network"]


def test_many_jobs_in_parallel_keep_their_order(pool):
    jobs = [
        Job(program=f"def f():\n    return {i}\n", tests=[assert_test(f"assert f() == {i}")])
        for i in range(40)
    ]
    seen = []
    results = pool.run(jobs, on_result=lambda i, r: seen.append(i))
    assert [r.status for r in results] == ["passed"] * 40
    assert sorted(seen) == list(range(40))
    assert [r.id for r in results] == [j.id for j in jobs]


def test_set_order_of_strings_is_the_same_in_every_worker(pool):
    # a reference output computed in one worker must equal a correct candidate's from another
    program = "def order():\n    return tuple({'kiwi', 'fig', 'plum', 'lime', 'pear', 'date', 'yuzu'})\n"
    raws = pool.run_raw([Job(program=program, tests=[call_test("order", [])]) for _ in range(8)])
    assert len({str(r["tests"][0]["v"]) for r in raws}) == 1


def test_dead_worker_gives_a_sandbox_error_and_is_replaced():
    with SandboxPool(workers=1) as own:
        os.kill(own._workers[0].proc.pid, signal.SIGKILL)
        own._workers[0].proc.wait()
        res = run(own, "pass")
        assert res.status == "sandbox_error"
        assert "restarted" in res.diagnostics
        assert run(own, "def f():\n    return 1\n", "assert f() == 1").status == "passed"


def test_closed_pool_refuses_work():
    own = SandboxPool(workers=1)
    own.close()
    with pytest.raises(Exception, match="closed"):
        run(own, "pass")


def test_without_namespaces_it_warns_and_says_so_in_every_result():
    with pytest.warns(SandboxIsolationWarning, match="namespaces disabled"):
        degraded = SandboxPool(workers=1, namespaces=False, limits=Limits(timeout_s=2.0))
    with degraded:
        assert degraded.isolation["network"] is False
        ok = run(degraded, "def f():\n    return 1\n", "assert f() == 1")
        bad = run(degraded, "def f():\n    return 2\n", "assert f() == 1")
        assert (ok.status, bad.status) == ("passed", "failed")
        assert ok.network_isolated is False
        assert ok.metadata["isolation"]["filesystem"] is False
        if degraded.isolation["uid_drop"]:  # root: the uid sweep still reaps daemons
            daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(300)\n"
            assert run(degraded, daemon).status == "passed"
            assert sandbox_processes(degraded) == []


def test_require_isolation_refuses_a_degraded_sandbox():
    with pytest.warns(SandboxIsolationWarning):
        with pytest.raises(Exception, match="required isolation unavailable"):
            SandboxPool(workers=1, namespaces=False, require_isolation=True)
