"""The test harness that runs inside the sandboxed process, and the plain-data codec that carries
values out of it.

Why values and not verdicts: the harness shares its process with the code under test, and that code
can do anything the harness can (monkeypatch it, read its frames, write to its reporting pipe, exit).
So the harness never decides pass or fail. For value tests it evaluates only the *holes* of the test
expression (the candidate's calls, see :mod:`rlaif.sandbox.expr`), encodes each result as plain data
(builtin types only, read with the base types' own methods, no user ``__eq__``) and sends it out; the
parent evaluates the rest of the expression and compares -- the expected value and the wrapper around
the call never enter the sandbox. For statement tests every ``assert`` was rewritten (in the parent)
into a report of its holes' values, so the parent judges each assert from plain values too; only the
test's control flow (loops, which asserts run) happens in here.

Message protocol (one JSON object per line on fd 3, each carrying the attempt's nonce ``k``):
``load_ok`` | ``load_err`` (program failed to compile or run) | ``val`` (test ``i`` produced the
values ``v``) | ``exc`` (test ``i`` raised) | ``unenc`` (a value of an unsupported type) | ``chk``
(assert site ``s`` of statement test ``i`` saw values ``v``, or ``u``: unencodable) | ``ok``
(statement test ``i`` finished) | ``done``. Anything else, or a message for the wrong test, is a
protocol violation; the parent accepts ``val`` only for value/call tests and ``chk``/``ok`` only for
statement tests.

This module imports only the standard library: it is loaded by the sandbox zygote, which stays small
so that forking it is cheap.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import sys

MAX_DEPTH = 100
MAX_ITEMS = 200_000
_BIG_INT_BITS = 2_000  # below 640 decimal digits: no int/str limit a program can set applies


class Unencodable(Exception):
    """The value is not plain data (or is too large) and cannot be compared safely."""


# -- codec ----------------------------------------------------------------------------------------
def _make_encode():
    """:func:`encode`, with every builtin it uses bound now (at import, before any candidate code)."""
    _type, _isinstance, _isfinite, _format, _repr = type, isinstance, math.isfinite, format, repr
    _int, _float, _str, _list, _tuple, _dict, _set, _frozenset = (
        int,
        float,
        str,
        list,
        tuple,
        dict,
        set,
        frozenset,
    )
    _complex, _bytes, _bytearray, _bool = complex, bytes, bytearray, bool
    int_value, float_value, str_value = int.__int__, float.__float__, str.__str__
    tuple_iter, list_iter, set_iter, frozenset_iter = (
        tuple.__iter__,
        list.__iter__,
        set.__iter__,
        frozenset.__iter__,
    )
    dict_items, complex_value, bytes_hex, bytearray_hex = (
        dict.items,
        complex.__complex__,
        bytes.hex,
        bytearray.hex,
    )
    bit_length, type_name, _Unencodable = int.bit_length, type.__dict__["__name__"].__get__, Unencodable

    def encode(value, *, max_items: int = MAX_ITEMS):
        """A JSON-able form of ``value`` that :func:`decode` turns back into builtins only.

        Subclasses of builtin types are converted through the base type's own methods, so a value
        whose class overrides ``__eq__``/``__iter__`` is compared by its real contents, never by its
        own logic.
        """
        budget = [max_items]

        def enc(v, depth):
            if depth > MAX_DEPTH:
                raise _Unencodable("value nested too deeply")
            budget[0] -= 1
            if budget[0] < 0:
                raise _Unencodable("value has too many elements")
            t = _type(v)
            if v is None or t is _bool or t is _str:
                return v
            if t is _int:
                return v if bit_length(v) < _BIG_INT_BITS else {"I": _format(v, "x")}
            if t is _float:
                return v if _isfinite(v) else {"F": _repr(v)}
            if t is _list:
                return [enc(x, depth + 1) for x in list_iter(v)]
            if t is _tuple:
                return {"t": [enc(x, depth + 1) for x in tuple_iter(v)]}
            if t is _dict:
                return {"d": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in dict_items(v)]}
            if t is _set:
                return {"s": [enc(x, depth + 1) for x in set_iter(v)]}
            if t is _frozenset:
                return {"f": [enc(x, depth + 1) for x in frozenset_iter(v)]}
            if t is _complex:
                return {"c": [enc(v.real, depth + 1), enc(v.imag, depth + 1)]}
            if t is _bytes:
                return {"b": bytes_hex(v)}
            if t is _bytearray:
                return {"y": bytearray_hex(v)}
            # subclasses: read the contents with the base type's methods (never the subclass's own)
            if _isinstance(v, _int):
                return enc(int_value(v), depth)
            if _isinstance(v, _float):
                return enc(float_value(v), depth)
            if _isinstance(v, _str):
                return str_value(v)
            if _isinstance(v, _tuple):
                return {"t": [enc(x, depth + 1) for x in tuple_iter(v)]}
            if _isinstance(v, _list):
                return [enc(x, depth + 1) for x in list_iter(v)]
            if _isinstance(v, _dict):
                return {"d": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in dict_items(v)]}
            if _isinstance(v, _frozenset):
                return {"f": [enc(x, depth + 1) for x in frozenset_iter(v)]}
            if _isinstance(v, _set):
                return {"s": [enc(x, depth + 1) for x in set_iter(v)]}
            if _isinstance(v, _complex):
                return enc(_complex(complex_value(v)), depth)
            if _isinstance(v, _bytes):
                return {"b": bytes_hex(v)}
            raise _Unencodable(f"value of type {type_name(t)!s}")

        return enc(value, 0)

    return encode


encode = _make_encode()


def decode(obj):
    """Plain builtins from :func:`encode`'s output; anything malformed raises ``ValueError``."""
    t = type(obj)
    if obj is None or t is bool or t is int or t is float or t is str:
        return obj
    if t is list:
        return [decode(x) for x in obj]
    if t is not dict or len(obj) != 1:
        raise ValueError(f"malformed encoded value ({t.__name__})")
    ((tag, payload),) = obj.items()
    if tag == "I" and type(payload) is str:
        return int(payload, 16)
    if tag == "F" and payload in ("nan", "inf", "-inf"):
        return float(payload)
    if tag == "b" and type(payload) is str:
        return bytes.fromhex(payload)
    if tag == "y" and type(payload) is str:
        return bytearray.fromhex(payload)
    if type(payload) is not list:
        raise ValueError(f"malformed encoded value (tag {tag!r})")
    if tag == "t":
        return tuple(decode(x) for x in payload)
    if tag == "s":
        return {decode(x) for x in payload}
    if tag == "f":
        return frozenset(decode(x) for x in payload)
    if tag == "d":
        if not all(type(kv) is list and len(kv) == 2 for kv in payload):
            raise ValueError("malformed encoded dict")
        return {decode(k): decode(v) for k, v in payload}
    if tag == "c" and len(payload) == 2:
        re_, im = decode(payload[0]), decode(payload[1])
        if type(re_) not in (int, float) or type(im) not in (int, float):
            raise ValueError("malformed encoded complex")
        return complex(re_, im)
    raise ValueError(f"malformed encoded value (tag {tag!r})")


def _make_dumps():
    """A JSON writer for the harness's own messages that calls nothing the candidate can replace:
    the C string escaper and the base types' ``__repr__`` are bound at import (``json.dumps`` looks
    up module globals at call time, so a program could patch it)."""
    escape = getattr(json.encoder, "c_encode_basestring_ascii", None) or json.encoder.encode_basestring_ascii
    _type, int_repr, float_repr, join, dict_items = type, int.__repr__, float.__repr__, str.join, dict.items
    _str, _int, _float, _list, _dict, _TypeError = str, int, float, list, dict, TypeError

    def dumps(obj) -> str:
        t = _type(obj)
        if obj is None:
            return "null"
        if obj is True:
            return "true"
        if obj is False:
            return "false"
        if t is _str:
            return escape(obj)
        if t is _int:
            return int_repr(obj)
        if t is _float:
            return float_repr(obj)
        if t is _list:
            return "[" + join(",", [dumps(x) for x in obj]) + "]"
        if t is _dict:
            return "{" + join(",", [escape(k) + ":" + dumps(v) for k, v in dict_items(obj)]) + "}"
        raise _TypeError("not a message value")

    return dumps


dumps = _make_dumps()


# -- in-child runner --------------------------------------------------------------------------------
def _short(exc: BaseException, limit: int = 300) -> str:
    try:
        text = str(exc)
    except BaseException:  # a user exception whose __str__ itself fails
        text = "<unprintable>"
    return text if len(text) <= limit else text[:limit] + "..."


def _candidate_line(tb) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<candidate>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def run_in_child(job: dict, start: int, report_fd: int, nonce: str) -> None:
    """Run the program, then tests ``start..n-1``, reporting each through ``report_fd``; never returns.

    Called in the freshly forked, already confined test process. Every name the harness needs after
    the program has run is bound to a local here first (and the codec's own names were bound at
    import), so a program that rebinds builtins, ``json`` or this module's globals does not change
    what the harness calls. A program that deliberately reaches into the harness's frames can still
    write any message it likes: that is why the parent judges value tests only from values, and
    accepts "ok" only for statement tests (see :mod:`rlaif.sandbox.spec`).
    """
    _exec, _eval, _compile, _write, _exit = builtins.exec, builtins.eval, builtins.compile, os.write, os._exit
    _type, _len, _encode, _decode, _dumps, _brief = type, len, encode, decode, dumps, _short
    _list, _enumerate, _range, _isinstance, _str_encode = list, enumerate, range, isinstance, str.encode
    _bool = bool
    _BaseException, _Unencodable, _SyntaxError, _NameError = (
        BaseException,
        Unencodable,
        SyntaxError,
        NameError,
    )
    _settrace, _setprofile = sys.settrace, sys.setprofile
    _stdout, _stderr = sys.stdout, sys.stderr
    plain_types = (str, bytes, bytearray, list, tuple, dict, set, frozenset, int, float, complex, bool)

    max_value = job["limits"]["max_value_bytes"]
    # the builtins as they are before the program runs: test code sees these, whatever it rebinds
    clean_builtins, _dict = dict(builtins.__dict__), dict

    def send(msg: dict) -> None:
        msg["k"] = nonce
        try:
            data = _str_encode(_dumps(msg) + "\n")
        except _BaseException:
            data = _str_encode(
                _dumps({"e": "unenc", "i": msg.get("i"), "msg": "unreportable", "k": nonce}) + "\n"
            )
        if _len(data) > max_value and msg["e"] in ("val", "chk"):
            small = {"e": "unenc", "i": msg["i"], "msg": "value too large", "k": nonce}
            if msg["e"] == "chk":
                small = {"e": "chk", "i": msg["i"], "s": msg["s"], "u": "value too large", "k": nonce}
            data = _str_encode(_dumps(small) + "\n")
        while data:
            n = _write(report_fd, data)
            data = data[n:]

    def finish(code: int = 0) -> None:
        for stream in (_stdout, _stderr):
            try:
                stream.flush()
            except _BaseException:
                pass
        _exit(code)

    def plain(value, consumed: bool = False):
        """Encoded plain data for a value; an iterator a test consumes is materialised first."""
        try:
            return _encode(value)
        except _Unencodable:
            if not consumed or _isinstance(value, plain_types):
                raise
        return _encode(_list(value))

    def launder(value):  # __rlaif_plain__: comparisons inside holes see what the parent would see
        return _decode(_encode(value))

    tests = job["tests"]
    # test code is trusted; compile it before any candidate code runs
    compiled = []
    for t in tests:
        if t["kind"] == "value":
            compiled.append([_compile(h, "<test>", "eval") for h in t["holes"]])
        elif t["kind"] == "stmt":
            compiled.append(_compile_statement(t["code"], _compile))
        else:
            compiled.append(None)
    setup = _compile(job["setup"], "<setup>", "exec") if job.get("setup") else None

    try:
        program = _compile(job["program"], "<candidate>", "exec")
    except (_SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        info = {"e": "load_err", "syntax": True, "type": _type(exc).__name__, "msg": _brief(exc)}
        info["line"] = getattr(exc, "lineno", None)
        send(info)
        finish()
        return

    namespace: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    failure = None
    try:
        _exec(program, namespace)
        if setup is not None:
            _exec(setup, namespace)
    except _BaseException as exc:
        failure = {"e": "load_err", "syntax": False, "type": _type(exc).__name__, "msg": _brief(exc)}
        failure["line"] = _candidate_line(exc.__traceback__)
    if failure is not None:  # sent outside the except block: the traceback (and its memory) is gone
        send(failure)
        finish()
        return
    send({"e": "load_ok"})

    current = [start]

    def report_assert(site, *values):  # __rlaif_assert__: one rewritten assert of a statement test
        i = current[0]
        iters = tests[i]["sites"][site]
        try:
            msg = {"e": "chk", "i": i, "s": site, "v": [plain(v, iters[j]) for j, v in _enumerate(values)]}
        except _BaseException as exc:
            msg = {"e": "chk", "i": i, "s": site, "u": _brief(exc)}
        send(msg)

    for i in _range(start, _len(tests)):
        current[0] = i
        _settrace(None)  # a trace or profile hook the program left behind does not follow the harness
        _setprofile(None)
        test = tests[i]
        kind = test["kind"]
        outcome = None
        value = None
        fn = namespace.get(test["fn"]) if kind == "call" else None
        # test code runs on a copy of the program's namespace with the builtins of before the program
        scope_globals = _dict(namespace)
        scope_globals["__builtins__"] = clean_builtins
        scope_globals[PLAIN_NAME] = launder
        try:
            if kind == "value":
                holes, iters = compiled[i], test["iters"]
                value = [plain(_eval(holes[j], scope_globals), iters[j]) for j in _range(_len(holes))]
            elif kind == "call":
                if fn is None:
                    raise _NameError(f"name {test['fn']!r} is not defined")
                value = fn(*_decode(test["args"]))
                if test.get("not_none") and _type(value) is not _bool:
                    value = value is not None
                value = _encode(value)
            else:
                code, wrapped = compiled[i]
                if wrapped:
                    scope: dict = {}
                    _exec(code, scope_globals, scope)
                    scope[STMT_NAME](report_assert)
                else:
                    scope_globals[ASSERT_NAME] = report_assert
                    _exec(code, scope_globals)
        except _Unencodable as exc:
            outcome = {"e": "unenc", "i": i, "msg": _brief(exc)}
        except _BaseException as exc:
            outcome = {"e": "exc", "i": i, "type": _type(exc).__name__, "msg": _brief(exc)}
        fn = scope_globals = None
        if outcome is None:
            outcome = {"e": "ok", "i": i} if kind == "stmt" else {"e": "val", "i": i, "v": value}
        value = None
        _settrace(None)
        _setprofile(None)
        send(outcome)
    send({"e": "done"})
    finish()


PLAIN_NAME, ASSERT_NAME, STMT_NAME = "__rlaif_plain__", "__rlaif_assert__", "__rlaif_statement_test__"


def _compile_statement(code: str, _compile):
    """The rewritten test code inside a function whose parameter is the assert reporter, so the
    program cannot swap the reporter through the namespace; code that cannot live in a function
    (``global`` statements, star imports) runs at module level instead. Returns (code, wrapped)."""
    body = "\n".join("    " + line for line in code.splitlines()) or "    pass"
    try:
        return _compile(f"def {STMT_NAME}({ASSERT_NAME}):\n{body}\n", "<test>", "exec"), True
    except SyntaxError:
        return _compile(code, "<test>", "exec"), False
