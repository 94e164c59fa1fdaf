"""What to run and how to judge it: limits, test cases, jobs, and the verdict (all on the parent side).

A test is one of three kinds:

- ``value``: an expression evaluated in the sandbox and compared here with an expected value
  (``assert f(x) == 8`` becomes expression ``f(x)``, operator ``==``, expected ``8``);
- ``call``: ``fn(*args)`` compared with an expected output, optionally within ``atol`` (MBPP+);
- ``stmt``: arbitrary test code whose normal completion is the pass signal (decided in-process).

:func:`assert_test` turns an ``assert`` line into a value test whenever its shape allows (a single
comparison against a literal, ``assert x``, ``assert not x``), so nearly every MBPP and HumanEval assert
is judged here, out of reach of the code under test. Expected values stay in this process: only
:meth:`TestCase.wire` crosses into the sandbox, and it carries no expected value.
"""

from __future__ import annotations

import ast
import operator
import signal
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

from rlaif.errors import RlaifError
from rlaif.sandbox.expr import WrapperError, compile_wrapper, evaluate, plan, rewrite_asserts
from rlaif.sandbox.harness import decode, encode

_MISSING: Any = object()


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run. ``total_timeout_s`` defaults to four per-test timeouts.

    ``tmp_mb`` (the work dir's tmpfs size) is fixed when the pool starts; the other limits may be
    changed per call of :meth:`SandboxPool.run`.
    """

    timeout_s: float = 3.0
    total_timeout_s: float | None = None
    memory_mb: int = 1024
    max_processes: int = 64
    file_mb: float = 16.0
    max_open_files: int = 64
    tmp_mb: float = 64.0
    output_bytes: int = 8192
    max_value_bytes: int = 1_000_000

    @property
    def total(self) -> float:
        return self.total_timeout_s if self.total_timeout_s is not None else 4 * self.timeout_s

    def wire(self) -> dict:
        return {
            "timeout": self.timeout_s,
            "total_timeout": self.total,
            "memory_mb": self.memory_mb,
            "max_processes": self.max_processes,
            "file_bytes": int(self.file_mb * 1024 * 1024),
            "max_open_files": self.max_open_files,
            "tmp_mb": self.tmp_mb,
            "output_bytes": self.output_bytes,
            "max_value_bytes": self.max_value_bytes,
            "max_report_bytes": 32 * self.max_value_bytes,
        }


Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not", "truthy", "falsy"]
_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_APPLY = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
    "is": operator.is_, "is not": operator.is_not,
}  # fmt: skip


@dataclass(frozen=True)
class TestCase:
    """One test. ``label`` is what diagnostics show (the assert line, or ``fn(input #i)``)."""

    kind: Literal["value", "call", "stmt"]
    label: str
    expr: str | None = None
    op: Op = "=="
    expected: Any = _MISSING
    fn: str | None = None
    args: Any = None  # encoded (harness.encode) argument list, for call tests
    atol: float = 0.0
    not_none: bool = False
    oracle: Literal["eq", "any", "eq_or_zero"] = "eq"
    code: str | None = None
    # value tests: the parts run in the sandbox, and the rest, evaluated here (rlaif.sandbox.expr)
    holes: tuple[str, ...] = ()
    iters: tuple[bool, ...] = ()
    wrapper: str | None = None
    # statement tests: the code with its asserts rewritten, and per assert (wrapper, iters, condition)
    wire_code: str | None = None
    sites: tuple[tuple[str, tuple[bool, ...], str], ...] = ()

    @property
    def has_expected(self) -> bool:
        return self.expected is not _MISSING

    def wire(self) -> dict:
        """What the sandbox sees: never the expected value, nor the wrapper around the holes."""
        if self.kind == "value":
            return {"kind": "value", "holes": list(self.holes), "iters": list(self.iters)}
        if self.kind == "call":
            return {"kind": "call", "fn": self.fn, "args": self.args, "not_none": self.not_none}
        return {"kind": "stmt", "code": self.wire_code, "sites": [list(s[1]) for s in self.sites]}


def statement_test(code: str, label: str | None = None, *, user_names=frozenset()) -> TestCase:
    """Arbitrary test code; its asserts are rewritten so the parent judges their operands.
    ``user_names``: functions the problem defines whose names are also builtins' (see assert_test)."""
    try:
        wire_code, sites = rewrite_asserts(code, user_names)
    except SyntaxError as exc:
        raise RlaifError(f"test code {code.strip()[:80]!r} is not valid Python ({exc.msg})") from None
    return TestCase(kind="stmt", label=label or code.strip().splitlines()[-1][:200], code=code,
                    wire_code=wire_code, sites=tuple((w, tuple(i), c) for w, i, c in sites))  # fmt: skip


def call_test(fn: str, args: list, expected: Any = _MISSING, *, atol: float = 0.0, label: str = "",
              not_none: bool = False, oracle: Literal["eq", "any", "eq_or_zero"] = "eq") -> TestCase:  # fmt: skip
    """``fn(*args)``; without ``expected`` the run only collects the output (reference solutions)."""
    return TestCase(kind="call", label=label or f"{fn}(...)", fn=fn, args=encode(list(args)),
                    expected=expected, atol=atol, not_none=not_none, oracle=oracle)  # fmt: skip


_SAFE_CALLS = {"set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "dict": dict,
               "float": float, "complex": complex, "int": int, "str": str, "bytes": bytes}  # fmt: skip


def safe_literal(node: ast.expr) -> Any:
    """A literal, or a builtin constructor applied to literals (``set([1, 2])``, ``float('inf')``);
    raises ``ValueError`` for anything that would need to run code."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _SAFE_CALLS
        and not node.keywords
        and len(node.args) <= 1
    ):
        args = [safe_literal(a) for a in node.args]
        try:
            return _SAFE_CALLS[node.func.id](*args)
        except Exception as exc:
            raise ValueError(str(exc)) from None
    raise ValueError("not a literal")


def assert_test(source: str, *, user_names=frozenset()) -> TestCase:
    """Plan one ``assert`` line: a value test (holes for the sandbox, the rest judged here), or a
    statement test for anything else. ``user_names``: names the problem defines (from its trusted
    reference solution, never the candidate's program), so ``sum(10, 15)`` of an MBPP task that
    defines ``sum`` is the candidate's call, not the builtin."""
    source = source.strip()
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise RlaifError(f"test {source[:80]!r} is not valid Python ({exc.msg})") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return statement_test(source, user_names=user_names)
    test = tree.body[0].test
    wrapper, holes, iters = plan(test, user_names)
    shape = _describe(source, test)
    return replace(shape, wrapper=wrapper, holes=tuple(holes), iters=tuple(iters))


def _describe(source: str, test: ast.expr) -> TestCase:
    """expr/op/expected for diagnostics (``f(x)``, ``==``, ``8``) where the assert has that shape."""
    whole = TestCase(kind="value", label=source, expr=ast.unparse(test), op="truthy", expected=None)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        op = _OPS[type(test.ops[0])]
        left, right = test.left, test.comparators[0]
        for side, other, the_op in ((left, right, op), (right, left, _MIRROR.get(op))):
            if the_op is None:
                continue
            try:
                expected = safe_literal(other)
            except ValueError:
                continue
            if the_op in ("is", "is not") and not any(expected is s for s in (None, True, False)):
                break
            if _is_literal(side):
                break  # both sides constant
            return TestCase(kind="value", label=source, expr=ast.unparse(side), op=the_op, expected=expected)
        return whole
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return TestCase(kind="value", label=source, expr=ast.unparse(test.operand), op="falsy", expected=None)
    return whole


def _is_literal(node: ast.expr) -> bool:
    try:
        safe_literal(node)
        return True
    except ValueError:
        return False


@dataclass
class Job:
    """One program and its tests. ``setup`` runs after the program, before the tests (MBPP's
    ``test_setup_code``, HumanEval's test module preamble)."""

    program: str
    tests: list[TestCase]
    task_id: str = ""
    id: str = ""
    setup: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def wire(self, limits: Limits) -> dict:
        return {
            "id": self.id,
            "program": self.program,
            "setup": self.setup,
            "tests": [t.wire() for t in self.tests],
            "limits": limits.wire(),
        }


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
    try:
        return all(abs(o - e) <= atol + 1e-7 * abs(e) for o, e in zip(outs, exps, strict=True))
    except TypeError:
        return False


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
    list of hole values for a value test."""
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


def _judge_checks(test: TestCase, checks: list) -> tuple[str, str] | None:
    """The first failing rewritten assert of a statement test, judged here; None when all held."""
    for chk in checks:
        site = chk.get("s") if isinstance(chk, dict) else None
        if type(site) is not int or not 0 <= site < len(test.sites):
            return "runtime_error", "harness protocol violated: report for an unknown assert"
        wrapper, _iters, condition = test.sites[site]
        if "u" in chk:
            return "failed", f"assert {condition}: a value cannot be compared safely ({chk.get('u')})"
        try:
            values = decode(chk.get("v"))
        except (ValueError, TypeError, RecursionError, OverflowError) as exc:
            return "runtime_error", f"harness protocol violated: undecodable value ({exc})"
        if type(values) is not list or len(values) != len(_iters):
            return "runtime_error", "harness protocol violated: wrong number of values"
        status, detail = _judge_wrapper(wrapper, values)
        if status != "passed":
            shown = ", ".join(_show(v) for v in values)
            return status, f"assert {condition}: {detail or 'failed'} (values: {shown})"
    return None


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
        if event in ("val", "unenc"):
            return "runtime_error", "harness protocol violated: a value for a statement test"
        checked = _judge_checks(test, list(raw.get("chk") or []))
        if checked is not None:
            return checked
    elif event in ("ok", "chk") or raw.get("chk"):
        return "runtime_error", f"harness protocol violated: {event!r} for a {test.kind} test"
    if event == "val":
        try:
            value = decode(raw.get("v"))
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
    if event == "timeout":
        return "timeout", "test exceeded its time limit"
    if event == "signal":
        return _signal_status(int(raw.get("sig", 0)), bool(raw.get("oom")))
    if event == "exit":
        return "runtime_error", f"the program exited (status {raw.get('code')}) before the test finished"
    if event == "violation":
        return "runtime_error", f"harness protocol violated: {raw.get('msg')}"
    return "sandbox_error", f"unknown outcome {event!r}"


def classify_load(load: dict) -> tuple[str, str]:
    """(status, detail) for a program that failed before its first test."""
    event = load.get("e")
    if event == "load_err":
        where = f"line {load['line']}: " if load.get("line") else ""
        detail = f"{where}{load.get('type')}: {load.get('msg', '')}"
        if load.get("syntax"):
            return "syntax_error", detail
        return _exception_status(str(load.get("type"))), detail
    if event == "timeout":
        return "timeout", "the program did not finish loading within the time limit"
    if event == "signal":
        return _signal_status(int(load.get("sig", 0)), bool(load.get("oom")))
    if event == "exit":
        return "runtime_error", f"the program exited (status {load.get('code')}) before any test ran"
    if event == "violation":
        return "runtime_error", f"harness protocol violated: {load.get('msg')}"
    return "sandbox_error", f"unknown load outcome {event!r}"


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
