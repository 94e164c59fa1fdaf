"""Attacks on the verdict itself, mounted for real in the sandbox: each program below is wrong and
tries to pass anyway, the way a reward-hacking policy would. Each test also runs an honest program
against the same tests, so a test that fails everything cannot pass by accident."""

from __future__ import annotations

from rlaif.sandbox import Job, assert_test, statement_test


def _run(pool, program: str, tests):
    return pool.run_one(Job(program=program, tests=tests))


# -- 1. forged harness messages ---------------------------------------------------------------------
FRAME_FORGER = """
import sys

def _harness_frame():
    frame = sys._getframe(1)
    while frame is not None:
        if "nonce" in frame.f_locals and "send" in frame.f_locals:
            return frame
        frame = frame.f_back
    raise RuntimeError("no harness frame")

def f(x):
    # find the report channel and its nonce through the frames, then claim success
    h = _harness_frame()
    send, i = h.f_locals["send"], h.f_locals["i"]
    send({"e": "ok", "i": i})
    return 0
"""


def test_ok_forged_through_frame_introspection_does_not_pass_a_value_test(isolated):
    res = _run(isolated, FRAME_FORGER, [assert_test("assert f(3) == 9")])
    assert not res.passed and res.status == "runtime_error", res.diagnostics
    assert "protocol violated" in res.diagnostics
    honest = _run(isolated, "def f(x):\n    return x * x\n", [assert_test("assert f(3) == 9")])
    assert honest.passed


SETTRACE_FORGER = """
import sys

def _rewrite(frame, event, arg):
    # rewrite the harness's outcome right before it is sent: a trace hook can set frame locals
    if frame.f_code.co_name == "run_in_child" and event == "line" and "outcome" in frame.f_locals:
        loc = frame.f_locals
        if isinstance(loc.get("outcome"), dict) and loc["outcome"].get("e") == "val":
            loc["outcome"] = {"e": "ok", "i": loc["i"]}
    return _rewrite

def f(x):
    sys._getframe(1).f_back.f_trace = _rewrite
    sys.settrace(_rewrite)
    return -1
"""


def test_outcome_rewritten_by_a_trace_hook_does_not_pass(isolated):
    res = _run(isolated, SETTRACE_FORGER, [assert_test("assert f(2) == 4"), assert_test("assert f(3) == 9")])
    assert res.tests_passed == 0 and not res.passed, res.per_test


JSON_PATCHER = """
import json, sys
# the harness serialises its messages after the candidate ran: replace everything it might call
json.dumps = lambda *a, **k: '{"e": "ok", "i": 0}'
json.encoder.encode_basestring_ascii = lambda s: '"ok"'
json.encoder.c_encode_basestring_ascii = lambda s: '"ok"'
harness = sys.modules.get("rlaif.sandbox.harness")
if harness is not None:
    harness.dumps = lambda obj: '{"e": "ok"}'
    harness.encode = lambda value, **k: 9
import builtins
builtins.type = lambda *a: int
builtins.isinstance = lambda *a: True
builtins.len = lambda x: 0
def f(x):
    return 0
"""


def test_patching_json_and_the_codec_changes_nothing(isolated):
    res = _run(isolated, JSON_PATCHER, [assert_test("assert f(3) == 9"), assert_test("assert f(0) == 0")])
    assert res.per_test == ["failed", "passed"], res.diagnostics


# -- 2. wrapper expressions evaluated in the sandbox ------------------------------------------------
SHADOWING = """
import builtins, math
builtins.abs = lambda x: 0.0          # abs(anything) < eps
builtins.round = lambda x, n=0: 0.5
builtins.sorted = lambda x: [1, 2, 3]
math.isclose = lambda *a, **k: True
abs = lambda x: 0.0
class Liar(float):
    def __sub__(self, other): return Liar(0.0)
    def __rsub__(self, other): return Liar(0.0)
    def __abs__(self): return 0.0
    def __lt__(self, other): return True
    def __eq__(self, other): return True
    def __mul__(self, other): return 1.0
    __hash__ = float.__hash__
def f(x):
    return Liar(123.0)
def g(x):
    return [3, 2, 9]
"""
WRAPPED = [
    "assert abs(f(1) - 0.5) < 1e-6",
    "assert math.isclose(f(1), 0.5)",
    "assert round(f(1), 2) == 0.5",
    "assert f(1) * 2 == 1.0",
    "assert f(1) < 0",
    "assert sorted(g(1)) == [1, 2, 3]",
]


def test_shadowed_builtins_patched_math_and_lying_floats_do_not_pass(isolated):
    res = _run(isolated, "import math\n" + SHADOWING, [assert_test(t) for t in WRAPPED])
    assert res.per_test == ["failed"] * len(WRAPPED), list(zip(WRAPPED, res.per_test, strict=True))
    honest = "import math\ndef f(x):\n    return 0.5\ndef g(x):\n    return [3, 1, 2]\n"
    res = _run(isolated, honest, [assert_test(t) for t in WRAPPED[:4] + WRAPPED[5:]])
    assert res.passed, res.diagnostics


# -- 3. statement tests (HumanEval check with loops) ------------------------------------------------
CHECK = """
def check(candidate):
    for n in range(5):
        assert candidate(n) == [i * i for i in range(n)]
    assert abs(sum(candidate(3)) - 5.0) < 1e-9
    data = {"a": 1}
    assert candidate(2)[1] in data.values()

check(squares)
"""
ALWAYS_EQUAL = """
class Anything(list):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __contains__(self, item): return True
    def __getitem__(self, i): return 1
    __hash__ = None
class Everything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __hash__(self): return 0
def squares(n):
    return Anything([7])
"""


LOOP_CHECK = """
def check(candidate):
    cases = [(n, [i * i for i in range(n)]) for n in range(5)]
    for n, expected in cases:
        assert candidate(n) == expected, n

check(squares)
"""


def test_object_equal_to_everything_fails_a_check_with_loops(isolated):
    for check in (LOOP_CHECK, CHECK):
        res = _run(isolated, ALWAYS_EQUAL, [statement_test(check)])
        assert res.status == "failed" and not res.passed, res.diagnostics
        assert "assert candidate(n) ==" in res.diagnostics
    everything = ALWAYS_EQUAL.replace("return Anything([7])", "return Everything()")
    res = _run(isolated, everything, [statement_test(CHECK)])
    assert res.status == "failed", res.diagnostics  # not encodable: cannot be compared safely
    honest_program = "def squares(n):\n    return [i * i for i in range(n)]\n"
    honest = _run(isolated, honest_program, [statement_test(CHECK), statement_test(LOOP_CHECK)])
    assert honest.passed, honest.diagnostics


def test_rebinding_builtins_does_not_skip_the_checks_loop(isolated):
    program = "import builtins\nbuiltins.range = lambda *a: []\ndef squares(n):\n    return [7]\n"
    res = _run(isolated, program, [statement_test(CHECK)])
    assert res.status == "failed", res.diagnostics


def test_comparisons_inside_a_comprehension_see_plain_values(isolated):
    test = assert_test("assert all(f(x) == y for x, y in [(1, 1), (2, 4)])")
    res = _run(isolated, ALWAYS_EQUAL.replace("def squares(n)", "def f(n)"), [test])
    assert res.status in ("failed", "runtime_error") and not res.passed, res.diagnostics
    assert _run(isolated, "def f(x):\n    return x * x\n", [test]).passed
