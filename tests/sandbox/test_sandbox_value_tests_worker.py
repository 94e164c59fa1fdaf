"""Value tests (every ``assert`` line) run in the worker: everything but the candidate's own calls --
the expected side, builtins applied to constants, comprehensions, ``or``, ``map`` -- is evaluated
there, on plain values, so nothing the candidate does in its own process changes it. Each attack is
mounted for real next to an honest program on the same test."""

from __future__ import annotations

import pytest

from rlaif.sandbox import Job, assert_test


def _both(pool, wrong: str, honest: str, *tests: str):
    jobs = [Job(program=p, tests=[assert_test(t) for t in tests]) for p in (wrong, honest)]
    return pool.run(jobs)


ATTACKS = [
    # MBPP 596: the expected side was a hole, so a patched ``sys`` answered it
    ("import sys\nsys.getsizeof = lambda *a: 0\ndef tuple_size(t):\n    return 0\n",
     "import sys\ndef tuple_size(t):\n    return sys.getsizeof(t)\n",
     'assert tuple_size(("A", 1, "B", 2)) == sys.getsizeof(("A", 1, "B", 2))'),
    # a builtin applied to constants ran in the sandbox, where the program had replaced it
    ("import builtins\nbuiltins.sorted = lambda *a, **k: [0]\ndef f(x):\n    return [0]\n",
     "def f(x):\n    return sorted(x)\n",
     "assert f([3, 1, 2]) == sorted([3, 1, 2])"),
    # comparisons inside a comprehension / an ``or``: an object equal to everything
    ("class A(list):\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return A([7])\n",
     "def f(x):\n    return x * x\n",
     "assert all(f(x) == y for x, y in [(1, 1), (2, 4)])"),
    ("import sys\ndef f(x):\n    sys._getframe(1).f_globals['__rlaif_plain__'] = lambda v: 3\n    return 0\n",
     "def f(x):\n    return 3\n",
     "assert f(1) == 3 or f(2) == 3"),
    # a StopIteration raised by the candidate truncated ``map`` and passed ``all``
    ("def is_even(x):\n    raise StopIteration\n",
     "def is_even(x):\n    return x % 2 == 0\n",
     "assert all(map(is_even, [2, 4, 6]))"),
    ("def f(x):\n    if x > 1:\n        raise StopIteration\n    return 1\n",
     "def f(x):\n    return 1\n",
     "assert list(map(f, [1, 2, 3])) == [1, 1, 1][:len(list(map(f, [1, 2, 3])))]"),
]  # fmt: skip


@pytest.mark.parametrize(("wrong", "honest", "test"), ATTACKS)
def test_only_the_candidates_own_calls_run_in_the_sandbox(isolated, wrong, honest, test):
    bad, good = _both(isolated, wrong, honest, test)
    assert good.passed, good.diagnostics
    assert not bad.passed, bad.diagnostics


def test_objects_of_the_candidate_pass_back_into_its_calls_but_never_compare(isolated):
    program = (
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
        "    def __eq__(self, other):\n        return True\n"
        "def longest(pairs):\n    return max(p.b - p.a for p in pairs)\n"
        "def make(a):\n    return Pair(a, a)\n"
    )
    res = isolated.run_one(Job(program=program, tests=[
        assert_test("assert longest([Pair(1, 5), Pair(2, 3)]) == 4"),  # MBPP 601's shape
        assert_test("assert make(1) == 5"),  # an object equal to everything is not plain data
        assert_test("assert make(1)"),
    ]))  # fmt: skip
    assert res.per_test == ["passed", "failed", "failed"], res.diagnostics
    assert "Pair" in res.metadata["failures"][0]["detail"]


def test_calls_made_ahead_behave_as_the_assert_would_call_them(isolated):
    # ``f(1) == 2 or f(2) == 3``: both calls are made ahead in one stream (no round trip each), but
    # the exception of the one the assert never reaches does not count, as in Python
    program = "def f(x):\n    if x == 2:\n        raise ValueError('never reached')\n    return 2\n"
    tests = ["assert f(1) == 2 or f(2) == 3", "assert f(2) == 3 or f(1) == 2", "assert f(1) == 3"]
    job = Job(program=program, tests=[assert_test(t) for t in tests])
    assert all(t.calls for t in job.tests)
    res = isolated.run_one(job)
    assert res.per_test == ["passed", "runtime_error", "failed"], res.diagnostics
    assert res.metadata["failures"][-1]["detail"] == "expected == 3, got 2"


def test_test_code_that_swallows_every_exception_still_times_out(isolated):
    # the worker's per-test timer keeps firing until the test code stops, so a bare except around
    # a slow candidate (or a long loop in the worker) cannot hold the worker
    from rlaif.sandbox import Limits, statement_test

    check = "for i in range(50):\n    try:\n        slow(i)\n        while True:\n            pass\n    except:\n        pass\n"
    job = Job(
        program="def slow(i):\n    return i\n",
        tests=[statement_test(check), assert_test("assert slow(1) == 1")],
    )
    res = isolated.run_one(job, limits=Limits(timeout_s=0.5))
    assert res.per_test == ["timeout", "passed"], res.diagnostics


def test_a_call_made_ahead_is_found_whatever_order_its_set_argument_lists(isolated):
    # MBPP 341: the literal {12, ..., 16} built in the parent and in the worker lists its items in
    # different orders (different table sizes); the call is the same call
    test = assert_test("assert set_to_tuple({12, 13, 14, 15, 16}) == (12, 13, 14, 15, 16)")
    assert test.calls
    job = Job(program="def set_to_tuple(s):\n    return tuple(sorted(s))\n", tests=[test])
    assert isolated.run_one(job).passed
