"""The plain-data codec, assert planning and verdict logic (pure functions, hand-computed values)."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, defaultdict, namedtuple

import pytest

from rlaif.errors import RlaifError
from rlaif.sandbox.harness import Unencodable, decode, encode
from rlaif.sandbox.spec import Job, Limits, call_test, judge, outputs_match, statement_test, value_test

ROUND_TRIP = [
    None,
    True,
    0,
    -7,
    3.5,
    "text",
    [1, [2, 3]],
    (1, (2, "a")),
    {"a": 1, 2: [3], (1, 2): None},
    {1, 2, 3},
    frozenset({1, 2}),
    1 + 2j,
    b"\x00\xff",
    bytearray(b"ab"),
    10**5000,
    -(10**5000),
    float("inf"),
    float("-inf"),
]


@pytest.mark.parametrize(
    "value", ROUND_TRIP, ids=[f"{type(v).__name__}-{i}" for i, v in enumerate(ROUND_TRIP)]
)
def test_round_trip_keeps_value_and_type(value):
    back = decode(encode(value))
    assert back == value
    assert type(back) is type(value)


def test_nan_round_trips_as_nan():
    assert math.isnan(decode(encode(float("nan"))))


def test_bool_and_int_stay_distinct():
    assert decode(encode([True, 1])) == [True, 1]
    assert [type(x) for x in decode(encode([True, 1]))] == [bool, int]


def test_subclasses_are_read_with_the_base_type():
    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    class Lying(list):
        def __iter__(self):
            return iter([42])

    point = namedtuple("Point", "x y")
    assert decode(encode(Liar(3))) == 3 and type(decode(encode(Liar(3)))) is int
    assert decode(encode(Lying([1, 2]))) == [1, 2]
    assert decode(encode(point(1, 2))) == (1, 2)
    assert decode(encode(OrderedDict(a=1))) == {"a": 1}
    assert decode(encode(defaultdict(int, a=2))) == {"a": 2}
    assert decode(encode(Counter("aab"))) == {"a": 2, "b": 1}


@pytest.mark.parametrize("value", [object(), iter([1]), (x for x in []), len, type])
def test_non_data_is_unencodable(value):
    with pytest.raises(Unencodable):
        encode(value)


def test_limits_on_size_and_depth():
    with pytest.raises(Unencodable):
        encode(list(range(100)), max_items=10)
    nested: list = []
    for _ in range(200):
        nested = [nested]
    with pytest.raises(Unencodable):
        encode(nested)


@pytest.mark.parametrize(
    "bad", [{"t": 1}, {"x": []}, {"d": [[1]]}, {"c": ["a", 1]}, {"F": "1.5"}, {"a": 1, "b": 2}, {"s": [[1]]}]
)
def test_malformed_encodings_are_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        decode(bad)


# -- planning ---------------------------------------------------------------------------------------
def test_equality_against_a_literal_becomes_a_value_test():
    t = value_test("assert min_cost([[1, 2], [3, 4]], 1, 1) == 8")
    assert (t.kind, t.expr, t.op, t.expected) == ("value", "min_cost([[1, 2], [3, 4]], 1, 1)", "==", 8)
    assert "8" not in str(t.wire())  # the expected value never travels to the sandbox


def test_literal_on_the_left_is_mirrored():
    t = value_test("assert 3 < f(x)")
    assert (t.expr, t.op, t.expected) == ("f(x)", ">", 3)


def test_constructor_literals_are_accepted():
    t = value_test("assert set(f(1)) == set([1, 2])")
    assert (t.kind, t.expr, t.expected) == ("value", "set(f(1))", {1, 2})
    assert value_test("assert f() == float('inf')").expected == float("inf")


def test_truthiness_and_negation_and_identity():
    assert (value_test("assert is_ok(3)").op, value_test("assert not is_ok(3)").op) == ("truthy", "falsy")
    t = value_test("assert f(1) is None")
    assert (t.kind, t.op, t.expected) == ("value", "is", None)


def test_any_assert_is_a_value_test_with_only_the_candidates_parts_in_the_sandbox():
    cases = {
        "assert f(1) == g(2)": ("_h0 == _h1", ("f(1)", "g(2)")),
        "assert 1 < f(1) < 3": ("1 < _h0 < 3", ("f(1)",)),
        "assert abs(f(x) - 0.5) < 1e-6": ("abs(_h0 - 0.5) < 1e-06", ("f(x)",)),
        "assert math.isclose(f(2), 1.5)": ("math.isclose(_h0, 1.5)", ("f(2)",)),
        "assert sorted(f(3)) == [1, 2]": ("sorted(_h0) == [1, 2]", ("f(3)",)),
        "assert f(4)[:1] == 'x'": ("_h0 == 'x'", ("f(4)[:1]",)),
        "assert 1 == 1": ("1 == 1", ()),
    }
    for src, (wrapper, holes) in cases.items():
        t = value_test(src)
        assert (t.kind, t.wrapper, t.holes) == ("value", wrapper, holes), src
        wire = str(t.wire())
        assert "0.5" not in wire and "1.5" not in wire and "[1, 2]" not in wire  # never in the sandbox
    assert value_test("x = 1").kind == "stmt"


def test_statement_tests_send_the_sandbox_only_the_candidates_names():
    t = statement_test("for x, y in [(1, 2), (3, 4)]:\n    assert f(x) == y\nassert abs(g() - 0.25) < 1e-9\n")
    assert t.names == ("f", "g") and t.modules == ()
    # the worker keeps the code; the test process is sent the names only (TestDriver.wire_job)
    from rlaif.sandbox.runner import TestDriver

    driver = TestDriver({"tests": [t.wire()], "limits": Limits().wire()}, {}, {}, "/", None)
    assert driver.wire_job["tests"] == [{"kind": "stmt", "names": ["f", "g"]}]
    # the problem's helpers come from its own code, never from the candidate
    code = "def check(c):\n    assert c(poly([1], 0)) == 1\ncheck(find_zero)\n"
    context = "import math\ndef poly(xs, x):\n    return 1\ndef find_zero(xs):\n    ''\n"
    assert statement_test(code, context=context).names == ()  # the prompt's stub is not the candidate
    assert statement_test(code, context=context, candidates=("find_zero",)).names == ("find_zero",)
    assert statement_test("assert math.sqrt(f(4)) == 2").modules == ("math",)


def test_ok_is_accepted_only_for_statement_tests_and_values_only_for_value_tests():
    value, stmt = value_test("assert f(1) == 2"), statement_test("check(f)")
    forged_ok = judge(_job(value), {"load": {"ok": True}, "tests": [{"e": "ok"}]})
    assert forged_ok.status == "runtime_error" and "protocol violated" in forged_ok.diagnostics
    forged_val = judge(_job(stmt), {"load": {"ok": True}, "tests": [{"e": "val", "v": [2]}]})
    assert forged_val.status == "runtime_error"


def test_parent_refuses_wrappers_that_would_stall_it():
    for src in ("assert 2 ** f(1) == 4", "assert f(1) << f(2) == 0", "assert 'x' * f(1) == ''"):
        t = value_test(src)
        raw = {"load": {"ok": True}, "tests": [{"e": "val", "v": [10**9] * len(t.holes)}]}
        v = judge(_job(t), raw)
        assert v.status == "runtime_error" and "cannot evaluate" in v.diagnostics, src


def test_invalid_test_is_an_error():
    with pytest.raises(RlaifError, match="not valid Python"):
        value_test("assert f(1) ==")


def test_outputs_match_follows_evalplus():
    assert outputs_match(0.1 + 0.2, 0.3, 0.0)  # float outputs get atol 1e-6 by default
    assert not outputs_match(1.0, 1.1, 0.0)
    assert outputs_match([1.0, 2.00005], [1.0, 2.0], 1e-4)
    assert not outputs_match([1.0, 2.0], (1.0, 2.0), 1e-4)
    assert not outputs_match("a", "b", 1e-4)


# -- verdicts ---------------------------------------------------------------------------------------
def _job(*tests):
    return Job(program="", tests=list(tests))


def test_judge_compares_values_in_the_parent():
    job = _job(value_test("assert f(1) == 2"), value_test("assert f(2) == 4"), value_test("assert g()"))
    raw = {
        "load": {"ok": True},
        "tests": [{"e": "val", "v": [2]}, {"e": "val", "v": [3]}, {"e": "val", "v": [[]]}],
    }
    v = judge(job, raw)
    assert v.per_test == ["passed", "failed", "failed"]
    assert v.status == "failed" and v.tests_passed == 1
    assert "expected == 4, got 3" in v.diagnostics


def test_judge_severity_and_missing_outcomes():
    job = _job(*(value_test(f"assert f({i}) == 1") for i in range(5)))
    raw = {
        "load": {"ok": True},
        "tests": [
            {"e": "exc", "type": "AssertionError"},
            {"e": "exc", "type": "ZeroDivisionError", "msg": "division by zero"},
            {"e": "signal", "sig": 24},
            {"e": "exc", "type": "MemoryError"},
        ],
    }
    v = judge(job, raw)
    assert v.per_test == ["failed", "runtime_error", "timeout", "memory_exceeded", "timeout"]
    assert v.status == "memory_exceeded"


def test_judge_load_failures():
    job = _job(value_test("assert f() == 1"), value_test("assert f() == 2"))
    syntax = judge(
        job, {"load": {"ok": False, "e": "load_err", "syntax": True, "type": "SyntaxError", "line": 3}}
    )
    assert syntax.status == "syntax_error" and syntax.per_test == ["syntax_error"] * 2
    assert "line 3" in syntax.diagnostics
    exited = judge(job, {"load": {"ok": False, "e": "exit", "code": 0}})
    assert exited.status == "runtime_error" and "status 0" in exited.diagnostics
    killed = judge(job, {"load": {"ok": False, "e": "signal", "sig": 9}})
    assert killed.status == "killed"
    assert judge(job, {"sandbox_error": "boom"}).status == "sandbox_error"


def test_judge_rejects_undecodable_values_and_honours_oracles():
    job = _job(
        call_test("f", [1], 5),
        call_test("f", [2], 5, oracle="eq_or_zero"),
        call_test("f", [3], 5, oracle="any"),
    )
    raw = {
        "load": {"ok": True},
        "tests": [{"e": "val", "v": {"zz": 1}}, {"e": "val", "v": 0}, {"e": "val", "v": 99}],
    }
    v = judge(job, raw)
    assert v.per_test == ["runtime_error", "passed", "passed"]


def test_statement_test_ok_is_a_pass():
    # (a statement test's outcome is decided in the worker; the test process never reports one)
    v = judge(_job(statement_test("check(f)")), {"load": {"ok": True}, "tests": [{"e": "ok"}]})
    assert v.status == "passed"


def test_functions_named_like_builtins_are_the_candidates():
    # MBPP task 126 defines ``sum(a, b)``: its test must call the candidate, not the builtin
    assert value_test("assert sum(10, 15) == 6").holes == ("sum(10, 15)",)
    t = value_test("assert sum([x, 1]) == 6", user_names={"sum"})
    assert (t.wrapper, t.holes) == ("_h0 == 6", ("sum([x, 1])",))
    # a literal written with a constructor stays here, out of the sandbox's reach
    t = value_test("assert f(1) == float('inf')")
    assert (t.wrapper, t.holes) == ("_h0 == float('inf')", ("f(1)",))


def test_the_test_process_resolves_only_the_names_the_test_needs():
    # a forged start of a statement test cannot bind the problem's helpers or builtins to proxies
    from rlaif.sandbox.calls import accepted_names

    forged = {"candidate": {"f": 1}, "poly": {"f": 1}, "range": {"v": []}}
    assert accepted_names(forged, ["candidate", "helper"]) == {"candidate": {"f": 1}, "helper": {"m": 1}}
