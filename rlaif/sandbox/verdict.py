"""The verdict: one test's raw outcome, or a whole run's report, classified on plain values.

Everything here runs in the parent. Values arrive as encoded plain data (:mod:`rlaif.sandbox.codec`);
wrappers are evaluated with :func:`rlaif.sandbox.expr.evaluate`; a report that does not fit the
test's kind is a protocol violation; nothing here raises on what a sandboxed program reports.
"""

from __future__ import annotations

import ast
import cmath
import signal
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rlaif.sandbox.codec import Unsafe, decode
from rlaif.sandbox.expr import WrapperError, compile_wrapper, evaluate

if TYPE_CHECKING:
    from rlaif.sandbox.cases import Job, TestCase


# -- verdicts --------------------------------------------------------------------------------------
_SEVERITY = ["failed", "runtime_error", "timeout", "memory_exceeded", "killed"]


def _is_floats(x: Any) -> bool:
    if type(x) is float:
        return True
    return type(x) in (list, tuple) and len(x) > 0 and all(type(i) is float for i in x)


def outputs_match(out: Any, exp: Any, atol: float) -> bool:
    """EvalPlus's rule: exact equality, else (for float outputs) numpy-allclose with rtol 1e-7."""
    if out == exp:
        return True
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if atol == 0 or type(out) is not type(exp):
        return False
    outs, exps = (list(out), list(exp)) if isinstance(exp, (list, tuple)) else ([out], [exp])
    if len(outs) != len(exps):
        return False
    return all(_close(o, e, atol) for o, e in zip(outs, exps, strict=True))


def _close(o: Any, e: Any, atol: float) -> bool:
    """numpy.isclose on one pair of real numbers, and never an error: an int too large for a float
    is simply not close, and an infinite (or nan) expected value is matched only by itself."""
    if type(o) not in (int, float, complex) or type(e) not in (int, float, complex):
        return False
    try:
        o, e = complex(o), complex(e)
    except OverflowError:
        return False
    if not (cmath.isfinite(o) and cmath.isfinite(e)):
        return o == e
    return abs(o - e) <= atol + 1e-7 * abs(e)


def _show(value: Any, limit: int = 120) -> str:
    """A short repr that never raises (an int beyond the int/str digit limit is shown by its size)."""
    if type(value) is int and value.bit_length() > 4000:
        return f"<int of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception as exc:  # e.g. a nested huge int: ValueError from the digit limit
        text = f"<{type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


@lru_cache(maxsize=4096)
def _wrapper_ast(source: str) -> ast.expr:
    return compile_wrapper(source)


def _judge_wrapper(wrapper: str, values: list) -> tuple[str, str]:
    """Evaluate a wrapper here, on plain values: (status, detail)."""
    try:
        ok = bool(evaluate(_wrapper_ast(wrapper), values))
    except WrapperError as exc:
        return "runtime_error", f"cannot evaluate the test on this value ({exc})"
    except Exception as exc:  # e.g. '<' between str and int: the assert itself would have raised
        return "runtime_error", f"{type(exc).__name__}: {_brief_exc(exc)}"
    return ("passed", "") if ok else ("failed", "")


def _brief_exc(exc: BaseException) -> str:
    try:
        return str(exc)[:300]
    except Exception:
        return "<unprintable>"


def compare(test: TestCase, value: Any) -> tuple[str, str]:
    """(status, detail) for what the sandbox reported for ``test``: one value for a call test, the
    list of hole values for a value test. Whatever the reported value makes comparing it raise is
    that sample's failure, never an error of the machinery."""
    try:
        return _compare(test, value)
    except Exception as exc:
        return "runtime_error", f"cannot compare the returned value ({type(exc).__name__}: {_brief_exc(exc)})"


def _compare(test: TestCase, value: Any) -> tuple[str, str]:
    if test.kind == "call":
        if test.oracle == "any":
            return "passed", ""
        if outputs_match(value, test.expected, test.atol) or (test.oracle == "eq_or_zero" and value == 0):
            return "passed", ""
        return "failed", f"expected {_show(test.expected)}, got {_show(value)}"
    if type(value) is not list or len(value) != len(test.holes):
        return "runtime_error", "harness protocol violated: wrong number of values"
    status, detail = _judge_wrapper(test.wrapper or "False", value)
    if status != "failed":
        return status, detail
    got = ", ".join(f"{h} = {_show(v)}" for h, v in zip(test.holes, value, strict=True))
    if test.op in ("truthy", "falsy") or len(test.holes) != 1 or test.holes[0] != test.expr:
        return "failed", f"got {got}" if got else "failed"
    return "failed", f"expected {test.op} {_show(test.expected)}, got {_show(value[0])}"


def _signal_status(sig: int, oom: bool = False) -> tuple[str, str]:
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    if oom:
        return "memory_exceeded", "killed by the out-of-memory killer (the run's total memory limit)"
    if sig == signal.SIGXCPU:
        return "timeout", "CPU time limit exceeded (SIGXCPU)"
    if sig == signal.SIGKILL:
        return "killed", "killed (SIGKILL)"
    return "runtime_error", f"crashed ({name})"


def _exception_status(etype: str) -> str:
    if etype == "AssertionError":
        return "failed"
    if etype == "MemoryError":
        return "memory_exceeded"
    return "runtime_error"


def classify_outcome(test: TestCase, raw: dict | None) -> tuple[str, str]:
    """(status, detail) for one test's raw outcome from the test driver."""
    if raw is None:
        return "timeout", "not run: the total time limit was reached first"
    event = raw.get("e")
    if test.kind == "stmt":
        if event == "val":
            return "runtime_error", "harness protocol violated: a value for a statement test"
        if event == "exc" and raw.get("line"):  # decided in the worker: where the test code failed
            etype = str(raw.get("type", "Exception"))
            one_call = len(test.calls) == 1 and test.calls[0][0] == test.expr and raw.get("calls") == 1
            if etype == "AssertionError" and one_call and test.has_expected and "got" in raw:
                return "failed", f"expected {test.op} {_show(test.expected)}, got {raw['got']}"
            return _exception_status(etype), f"{etype} at {raw['line']} {raw.get('msg') or ''}".rstrip()
    elif event == "ok":
        return "runtime_error", f"harness protocol violated: {event!r} for a {test.kind} test"
    if event == "val":
        try:
            value = decode(raw.get("v"))
        except Unsafe as exc:
            return "failed", f"returned a value that cannot be compared safely ({exc})"
        except (ValueError, TypeError, RecursionError, OverflowError) as exc:
            return "runtime_error", f"harness protocol violated: undecodable value ({exc})"
        if test.kind == "call" and not test.has_expected:
            return "passed", ""
        return compare(test, value)
    if event == "ok":
        return "passed", ""
    if event in ("exc", "load_err"):
        etype = str(raw.get("type", "Exception"))
        prefix = "on reload: " if raw.get("reload") else ""
        return _exception_status(etype), f"{prefix}{etype}: {raw.get('msg', '')}".rstrip(": ")
    if event == "unenc":
        return "failed", f"returned a value that cannot be compared safely ({raw.get('msg', '')})"
    return _ended(raw, loading=False)


def classify_load(load: dict) -> tuple[str, str]:
    """(status, detail) for a program that failed before its first test."""
    event = load.get("e")
    if event == "load_err":
        where = f"line {load['line']}: " if load.get("line") else ""
        detail = f"{where}{load.get('type')}: {load.get('msg', '')}"
        if load.get("syntax"):
            return "syntax_error", detail
        return _exception_status(str(load.get("type"))), detail
    return _ended(load, loading=True)


def _ended(raw: dict, *, loading: bool) -> tuple[str, str]:
    """(status, detail) for a test process that ended without reporting a result: a timeout, a
    signal, an exit, a protocol violation -- while loading the program, or inside a test."""
    event = raw.get("e")
    if event == "timeout":
        if loading:
            return "timeout", "the program did not finish loading within the time limit"
        return "timeout", "test exceeded its time limit"
    if event == "signal":
        return _signal_status(int(raw.get("sig", 0)), bool(raw.get("oom")))
    if event == "exit":
        before = "any test ran" if loading else "the test finished"
        return "runtime_error", f"the program exited (status {raw.get('code')}) before {before}"
    if event == "violation":
        return "runtime_error", f"harness protocol violated: {raw.get('msg')}"
    return "sandbox_error", f"unknown {'load ' if loading else ''}outcome {event!r}"


@dataclass
class Verdict:
    status: str
    per_test: list[str]
    details: list[str]
    diagnostics: str

    @property
    def tests_passed(self) -> int:
        return sum(s == "passed" for s in self.per_test)


def judge(job: Job, raw: dict) -> Verdict:
    """The overall status: syntax error, else a load failure, else passed when every test passed,
    else the most severe test status (killed > memory > timeout > runtime error > failed)."""
    n = len(job.tests)
    if raw.get("sandbox_error"):
        return Verdict("sandbox_error", ["sandbox_error"] * n, [""] * n, str(raw["sandbox_error"]))
    load = raw.get("load") or {"ok": False, "e": "timeout"}
    if not load.get("ok"):
        status, detail = classify_load(load)
        return Verdict(status, [status] * n, [detail] * n, detail)
    outcomes = list(raw.get("tests") or [])
    outcomes += [None] * (n - len(outcomes))
    per_test, details = [], []
    for test, outcome in zip(job.tests, outcomes[:n], strict=True):
        status, detail = classify_outcome(test, outcome)
        per_test.append(status)
        details.append(detail)
    bad = [i for i, s in enumerate(per_test) if s != "passed"]
    if not bad:
        return Verdict("passed", per_test, details, "")
    if any(per_test[i] == "sandbox_error" for i in bad):
        worst = "sandbox_error"
    else:
        worst = max((per_test[i] for i in bad), key=_SEVERITY.index)
    first = next(i for i in bad if per_test[i] == worst)
    label = job.tests[first].label
    diagnostics = f"test {first + 1}/{n} [{label[:120]}]: {details[first]}"
    return Verdict(worst, per_test, details, diagnostics)
