"""Split a test expression into what must run in the sandbox and what the parent evaluates itself.

Why: a wrapper around the candidate's call (``abs(f(x) - 0.5) < 1e-6``, ``math.isclose(f(x), 2.0)``,
``sorted(f(x)) == [1, 2]``) evaluated in the sandbox can be subverted by the code under test
(shadow ``abs``, patch ``math.isclose``, return a float subclass whose ``__sub__`` returns 0). So
:func:`plan` cuts the expression into *holes* -- the smallest sub-expressions that need the
candidate's namespace (its calls, names it defines, attribute chains on its objects) -- and a
*wrapper*, the rest, in which each hole is replaced by a name ``_h0``, ``_h1``, ... Only the holes
travel to the sandbox; their values come back as plain data (:mod:`rlaif.sandbox.harness`), and
:func:`evaluate` computes the wrapper here with the real builtins and ``math``, on plain values.

The wrapper may contain only: literals, containers, arithmetic, comparisons, ``and``/``or``/``not``,
conditional expressions, subscripts of constant data, calls of :data:`SAFE_FUNCS`, ``math.<name>`` for
:data:`SAFE_MATH`, and :data:`SAFE_METHODS` of plain values. A short-circuit operator or conditional
whose later parts need the sandbox becomes one hole as a whole (its operands would otherwise all be
evaluated). :func:`evaluate` refuses results that would take unbounded time or memory (huge powers,
shifts, repetitions), so a crafted value cannot stall the parent. Standard library only.
"""

from __future__ import annotations

import ast
import math
import operator

SAFE_FUNCS = {
    "abs": abs, "all": all, "any": any, "bool": bool, "bytes": bytes, "complex": complex,
    "dict": dict, "divmod": divmod, "enumerate": enumerate, "float": float, "frozenset": frozenset,
    "int": int, "isinstance": isinstance, "len": len, "list": list, "max": max, "min": min,
    "repr": repr, "reversed": reversed, "round": round, "set": set, "sorted": sorted,
    "str": str, "sum": sum, "tuple": tuple, "type": type, "zip": zip,
}  # fmt: skip
# calls whose single argument is consumed as an iterable: a generator the candidate returns there is
# materialised as a list in the sandbox (``list(f(x))`` keeps working for generator functions)
CONSUMERS = {"all", "any", "dict", "enumerate", "frozenset", "len", "list", "max", "min", "reversed",
             "set", "sorted", "sum", "tuple", "zip"}  # fmt: skip
CONSTRUCTORS = {
    "bool",
    "bytes",
    "complex",
    "dict",
    "float",
    "frozenset",
    "int",
    "list",
    "set",
    "str",
    "tuple",
}
SAFE_MATH = {
    "isclose", "fabs", "sqrt", "floor", "ceil", "trunc", "isnan", "isinf", "isfinite", "log", "log2",
    "log10", "exp", "pi", "e", "inf", "nan", "tau", "fsum", "hypot", "sin", "cos", "tan", "atan",
    "atan2", "degrees", "radians", "gcd", "copysign", "prod", "dist",
}  # fmt: skip
SAFE_METHODS = {
    "capitalize", "casefold", "count", "endswith", "find", "get", "index", "isalnum", "isalpha",
    "isdigit", "islower", "isspace", "isupper", "items", "join", "keys", "lower", "lstrip",
    "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "values",
}  # fmt: skip
_PLAIN_TYPES = (str, bytes, bytearray, list, tuple, dict, set, frozenset, int, float, complex, bool)
_MAX_BITS = 1 << 20  # results above ~1 Mbit (or 10 M elements) are refused, not computed
_MAX_ITEMS = 10_000_000


class WrapperError(Exception):
    """The wrapper cannot be evaluated on these values (as the assert itself would have raised)."""


class _Planner:
    def __init__(self, user_names: frozenset[str] = frozenset()) -> None:
        self.user_names = user_names  # names the problem itself defines (MBPP has a ``def sum(a, b)``)
        self.holes: list[str] = []
        self.hole_nodes: list[ast.expr] = []
        self.iters: list[bool] = []

    def hole(self, node: ast.expr, consumed: bool = False) -> ast.expr:
        self.hole_nodes.append(_Launder().visit(node))
        self.holes.append(ast.unparse(self.hole_nodes[-1]))
        self.iters.append(consumed)
        return ast.Name(id=f"_h{len(self.holes) - 1}", ctx=ast.Load())

    def pure(self, node: ast.expr) -> bool:
        """Whether ``node`` needs nothing from the sandbox."""
        probe = _Planner(self.user_names)
        probe.visit(node)
        return not probe.holes

    def visit(self, node: ast.expr, consumed: bool = False) -> ast.expr:
        v = self.visit
        if isinstance(node, ast.Constant):
            return node
        if isinstance(node, ast.Name):
            return node if self._builtin(node.id) else self.hole(node, consumed)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return self.hole(node, consumed)
            return type(node)(
                elts=[v(e) for e in node.elts],
                **({"ctx": ast.Load()} if not isinstance(node, ast.Set) else {}),
            )
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                return self.hole(node, consumed)
            return ast.Dict(keys=[v(k) for k in node.keys], values=[v(x) for x in node.values])
        if isinstance(node, ast.UnaryOp):
            return ast.UnaryOp(op=node.op, operand=v(node.operand))
        if isinstance(node, ast.BinOp):
            return ast.BinOp(left=v(node.left), op=node.op, right=v(node.right))
        if isinstance(node, ast.BoolOp):
            if not all(self.pure(x) for x in node.values[1:]):
                return self.hole(node, consumed)
            return ast.BoolOp(op=node.op, values=[v(x) for x in node.values])
        if isinstance(node, ast.IfExp):
            if not (self.pure(node.body) and self.pure(node.orelse)):
                return self.hole(node, consumed)
            return ast.IfExp(test=v(node.test), body=node.body, orelse=node.orelse)
        if isinstance(node, ast.Compare):
            return ast.Compare(left=v(node.left), ops=node.ops, comparators=[v(c) for c in node.comparators])
        if isinstance(node, ast.Subscript):
            # an item of the candidate's value is taken in the sandbox (``f(x)[:1]`` need not ship a
            # huge value); the index reveals nothing the comparison here depends on
            if not (self.pure(node.value) and self.pure(node.slice)):
                return self.hole(node, consumed)
            return node
        if isinstance(node, ast.Slice):
            return ast.Slice(*(None if p is None else v(p) for p in (node.lower, node.upper, node.step)))
        if isinstance(node, ast.Attribute) and _is_math(node):
            return node
        if isinstance(node, ast.Call) and self._safe_call(node) and not self._constant_call(node):
            consume = isinstance(node.func, ast.Name) and node.func.id in CONSUMERS and len(node.args) == 1
            func = node.func
            if isinstance(func, ast.Attribute) and not _is_math(func):
                func = ast.Attribute(value=v(func.value), attr=func.attr, ctx=ast.Load())
            return ast.Call(
                func=func,
                args=[v(a, consumed=consume) for a in node.args],
                keywords=[ast.keyword(arg=k.arg, value=v(k.value)) for k in node.keywords],
            )
        return self.hole(node, consumed)

    def _builtin(self, name: str) -> bool:
        return name in SAFE_FUNCS and name not in self.user_names

    def _constant_call(self, node: ast.Call) -> bool:
        """A builtin applied to constants only (``sum(10, 15)``) tests nothing of the candidate: it
        is the candidate's own function of that name, so it is a hole."""
        if not (isinstance(node.func, ast.Name) and node.args) or node.func.id in CONSTRUCTORS:
            return False  # float('inf'), set([1, 2]): how literals are written, evaluated here
        for sub in ast.walk(
            ast.Module(body=[ast.Expr(a) for a in node.args + [k.value for k in node.keywords]])
        ):
            if isinstance(sub, ast.Name) and not self._builtin(sub.id):
                return False
            if isinstance(sub, (ast.Attribute, ast.Lambda, ast.comprehension, ast.NamedExpr)):
                return False
        return True

    def _safe_call(self, node: ast.Call) -> bool:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return False
        func = node.func
        if isinstance(func, ast.Name):
            return self._builtin(func.id)
        if isinstance(func, ast.Attribute):
            return _is_math(func) or func.attr in SAFE_METHODS
        return False


PLAIN_NAME = "__rlaif_plain__"


class _Launder(ast.NodeTransformer):
    """Inside a hole (a comprehension, a lambda, ``f(x) or g(y)``), every comparison's operands are
    passed through ``__rlaif_plain__`` (plain data, as the parent would see them), so an object whose
    ``__eq__`` lies cannot pass ``all(f(x) == y for ...)`` either."""

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        self.generic_visit(node)

        def wrap(x: ast.expr) -> ast.expr:
            return ast.Call(func=ast.Name(id=PLAIN_NAME, ctx=ast.Load()), args=[x], keywords=[])

        return ast.Compare(
            left=wrap(node.left), ops=node.ops, comparators=[wrap(c) for c in node.comparators]
        )


def _is_math(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "math"
        and node.attr in SAFE_MATH
    )


def plan(expr: ast.expr | str, user_names=frozenset()) -> tuple[str, list[str], list[bool]]:
    """(wrapper source, hole sources, which holes are consumed as iterables) for an expression;
    ``user_names``: names the problem defines itself, never taken for the builtins."""
    wrapper, _nodes, holes, iters = plan_nodes(expr, user_names)
    return wrapper, holes, iters


def plan_nodes(
    expr: ast.expr | str, user_names=frozenset()
) -> tuple[str, list[ast.expr], list[str], list[bool]]:
    """:func:`plan`, also returning the holes as (laundered) AST nodes."""
    node = ast.parse(expr, mode="eval").body if isinstance(expr, str) else expr
    planner = _Planner(frozenset(user_names))
    wrapper = ast.fix_missing_locations(ast.Expression(body=planner.visit(node)))
    return ast.unparse(wrapper), planner.hole_nodes, planner.holes, planner.iters


# -- evaluation in the parent -------------------------------------------------------------------------
def _bits(x) -> int:
    return x.bit_length() if type(x) is int else 64


def _guarded_pow(a, b):
    if type(a) is int and type(b) is int and b > 0 and _bits(a) * b > _MAX_BITS:
        raise WrapperError("power too large to evaluate")
    if type(b) is int and b > _MAX_BITS and type(a) in (float, complex):
        return a**b
    return pow(a, b)


def _guarded_lshift(a, b):
    if type(b) is int and b > _MAX_BITS:
        raise WrapperError("shift too large to evaluate")
    return a << b


def _guarded_mul(a, b):
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, bytes, list, tuple)) and type(n) is int and len(seq) * n > _MAX_ITEMS:
            raise WrapperError("repetition too large to evaluate")
    return a * b


_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _guarded_mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _guarded_pow,
    ast.LShift: _guarded_lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor, ast.BitAnd: operator.and_, ast.MatMult: operator.matmul,
}  # fmt: skip
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
_CMP = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip


def compile_wrapper(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


def evaluate(node: ast.expr, values: list):
    """The wrapper's value with ``_hN`` bound to ``values[N]`` (plain data); raises WrapperError or
    the error the expression itself raises (TypeError, ZeroDivisionError, ...)."""
    ev = evaluate
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id.startswith("_h") and node.id[2:].isdigit():
            return values[int(node.id[2:])]
        if node.id in SAFE_FUNCS:
            return SAFE_FUNCS[node.id]
        raise WrapperError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Tuple):
        return tuple(ev(e, values) for e in node.elts)
    if isinstance(node, ast.List):
        return [ev(e, values) for e in node.elts]
    if isinstance(node, ast.Set):
        return {ev(e, values) for e in node.elts}
    if isinstance(node, ast.Dict):
        return {ev(k, values): ev(x, values) for k, x in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](ev(node.operand, values))
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](ev(node.left, values), ev(node.right, values))
    if isinstance(node, ast.BoolOp):
        result = None
        for part in node.values:
            result = ev(part, values)
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result
    if isinstance(node, ast.IfExp):
        return ev(node.body, values) if ev(node.test, values) else ev(node.orelse, values)
    if isinstance(node, ast.Compare):
        left = ev(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = ev(comp, values)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Subscript):
        return ev(node.value, values)[ev(node.slice, values)]
    if isinstance(node, ast.Slice):
        return slice(*(None if p is None else ev(p, values) for p in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Attribute) and _is_math(node):
        return getattr(math, node.attr)
    if isinstance(node, ast.Call):
        args = [ev(a, values) for a in node.args]
        kwargs = {k.arg: ev(k.value, values) for k in node.keywords}
        func = node.func
        if isinstance(func, ast.Attribute) and not _is_math(func):
            receiver = ev(func.value, values)
            if func.attr not in SAFE_METHODS or not isinstance(receiver, _PLAIN_TYPES):
                raise WrapperError(f"method {func.attr!r} is not evaluated outside the sandbox")
            return getattr(receiver, func.attr)(*args, **kwargs)
        return ev(func, values)(*args, **kwargs)
    raise WrapperError(f"unsupported expression {type(node).__name__}")
