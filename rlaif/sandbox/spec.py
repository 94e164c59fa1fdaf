"""How tests are planned from source: assert lines, statement tests and call tests (parent side).

A test is one of three kinds (the data types are in :mod:`rlaif.sandbox.cases`):

- ``stmt``: test code -- one ``assert`` line (:func:`assert_test`) or a whole HumanEval ``check``
  with loops (:func:`statement_test`). It runs in the worker, a process the candidate cannot reach
  (:mod:`rlaif.sandbox.trusted`), with the real builtins and the problem's own code; each call of a
  candidate's function is a call into the sandbox with plain values. The candidate's process only
  ever sees the names it must provide, never the test code;
- ``call``: ``fn(*args)`` compared with an expected output, optionally within ``atol`` (MBPP+);
- ``value``: the older plan of one ``assert`` (:func:`value_test`), split (:mod:`rlaif.sandbox.expr`)
  into holes evaluated in the sandbox and a wrapper evaluated here on their plain values; kept for
  callers that need the hole values themselves (``run_raw``), not used to judge candidates.

Expected values and wrappers stay out of the sandbox: only :meth:`TestCase.wire` crosses into the
worker, and the worker passes the test process no test code. A report that does not fit the
test's kind is a protocol violation, never a pass (:mod:`rlaif.sandbox.verdict`, re-exported here
with the data types).
"""

from __future__ import annotations

import ast
import builtins
import functools
import sys
from dataclasses import replace
from typing import Any, Literal

from rlaif.errors import RlaifError
from rlaif.sandbox.cases import MISSING, Job, Limits, Op, TestCase
from rlaif.sandbox.codec import Unencodable, encode
from rlaif.sandbox.expr import plan

# re-exported: callers take the data types and the verdict from here
from rlaif.sandbox.verdict import Verdict, classify_load, classify_outcome, compare, judge, outputs_match

_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def statement_test(code: str, label: str | None = None, *, user_names=frozenset(), context: str = "",
                   candidates=None, _tree: ast.Module | None = None) -> TestCase:  # fmt: skip
    """Arbitrary test code, run in the worker (never in the candidate's process) after the problem's
    own ``context`` code (HumanEval's prompt: the helpers the test may call). ``candidates``: the
    names that are the candidate's (its entry point); by default every name the test uses without
    defining it that is neither a builtin, a standard module nor defined by ``context`` -- and
    ``user_names`` (names the problem defines that are also builtins', see :func:`assert_test`);
    ``_tree``: ``code`` already parsed (by :func:`assert_test`)."""
    try:
        tree = _tree or ast.parse(code)
        context_names = _context_names(context) if context else frozenset()
    except SyntaxError as exc:
        raise RlaifError(f"test code {code.strip()[:80]!r} is not valid Python ({exc.msg})") from None
    free = _free_names(tree)
    user = set(user_names)
    if candidates is None:
        candidates = {n for n in free if n in user or not (n in _BUILTINS or n in context_names)}
        candidates -= {n for n in free if n in sys.stdlib_module_names and n not in user}
    modules = sorted(n for n in free if n in sys.stdlib_module_names and n not in candidates
                     and n not in context_names)  # fmt: skip
    return TestCase(kind="stmt", label=label or code.strip().splitlines()[-1][:200], code=code,
                    context=context, names=tuple(sorted(candidates)), modules=tuple(modules))  # fmt: skip


_BUILTINS = frozenset(dir(builtins))


@functools.lru_cache(maxsize=64)
def _context_names(context: str) -> frozenset[str]:
    """The names a problem's own code defines: parsed once for all its asserts (a HumanEval prompt
    is shared by every assert of its ``check``)."""
    return frozenset(_defined(ast.parse(context)))


def _defined(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (assignments, defs, imports, parameters, loop targets)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _free_names(tree: ast.AST) -> set[str]:
    """Names the code reads but never binds."""
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loaded - _defined(tree)


def call_test(fn: str, args: list, expected: Any = MISSING, *, atol: float = 0.0, label: str = "",
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


def assert_test(source: str, *, user_names=frozenset(), context: str = "", candidates=None) -> TestCase:
    """One ``assert`` line (or any test code): run in the worker like :func:`statement_test`, so
    everything but the candidate's own calls -- the expected side, builtins applied to constants,
    comprehensions, ``or`` -- is evaluated there, on plain values. ``user_names``: names the problem
    defines (from its trusted reference solution, never the candidate's program), so ``sum(10, 15)``
    of an MBPP task that defines ``sum`` is the candidate's call, not the builtin."""
    source = source.strip()
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise RlaifError(f"test {source[:80]!r} is not valid Python ({exc.msg})") from None
    test = statement_test(source, label=source[:200], user_names=user_names, context=context,
                          candidates=candidates, _tree=tree)  # fmt: skip
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return test
    shape = _describe(source, tree.body[0].test)
    calls = _constant_calls(tree.body[0].test, set(test.names))
    return replace(test, expr=shape.expr, op=shape.op, expected=shape.expected, calls=calls)


def _constant_calls(expr: ast.expr, candidates: set[str]) -> tuple:
    """The candidate's calls of an assert, when every use of a candidate's name is a call with
    literal arguments outside any loop or lambda (``candidate(2, 3) == 5``): ``(source, name,
    encoded args, encoded kwargs)`` each. The sandbox then makes these calls ahead, in one stream,
    without a round trip per call, and the worker evaluates the assert on their results. ``()``
    when any use is not such a call: the worker then calls into the sandbox as the test runs."""
    scoped = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    calls, uses = [], 0
    for node in ast.walk(expr):
        if isinstance(node, scoped) and any(
            isinstance(n, ast.Name) and n.id in candidates for n in ast.walk(node)
        ):
            return ()
        if isinstance(node, ast.Name) and node.id in candidates:
            uses += 1
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in candidates:
            try:
                args = [ast.literal_eval(a) for a in node.args]
                kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
                if len(kwargs) != len(node.keywords):
                    return ()
                calls.append((ast.unparse(node), node.func.id, encode(args), encode(kwargs)))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, Unencodable):
                return ()
    return tuple(calls) if calls and len(calls) == uses else ()


def value_test(source: str, *, user_names=frozenset()) -> TestCase:
    """The older plan for one ``assert``: its holes evaluated in the sandbox, the rest here (kept
    for callers that need the values themselves; :func:`assert_test` is the sound default)."""
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


__all__ = ["Job", "Limits", "Op", "TestCase", "Verdict", "assert_test", "call_test", "classify_load",
           "classify_outcome", "compare", "judge", "outputs_match", "safe_literal", "statement_test",
           "value_test"]  # fmt: skip
