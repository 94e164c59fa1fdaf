"""The test harness that runs inside the sandboxed process, and the plain-data codec that carries
values out of it.

Why values and not verdicts: the harness shares its process with the code under test, and that code
can do anything the harness can (monkeypatch it, read its memory, write to its reporting pipe, exit).
So for value tests (``expr`` compared with an expected value, and MBPP+-style calls) the harness never
decides pass or fail: it evaluates the expression, encodes the result as plain data (only builtin
types, exact types, no user ``__eq__``) and sends it out. The comparison happens in the parent, and
the expected value never enters the sandbox at all. A program can therefore make such a test pass only
by producing the expected value.

Statement tests (arbitrary test code, e.g. a HumanEval ``check`` that is not a list of asserts) can
only be decided in-process: their "ok" message is a weaker signal (see the package docstring).

Message protocol (one JSON object per line on fd 3, each carrying the attempt's nonce ``k``):
``load_ok`` | ``load_err`` (program failed to compile or run) | ``val`` (test ``i`` produced value ``v``)
| ``exc`` (test ``i`` raised) | ``unenc`` (value of an unsupported type) | ``ok`` (statement test ``i``
finished) | ``done``. Anything else, or a message for the wrong test, is a protocol violation.

This module imports only the standard library: it is loaded by the sandbox worker, which stays small so
that forking it is cheap.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import sys

MAX_DEPTH = 100
MAX_ITEMS = 200_000
_BIG_INT_BITS = 12_000  # above ~3600 decimal digits json would hit int/str conversion limits


class Unencodable(Exception):
    """The value is not plain data (or is too large) and cannot be compared safely."""


# -- codec ----------------------------------------------------------------------------------------
def encode(value, *, max_items: int = MAX_ITEMS):
    """A JSON-able form of ``value`` that :func:`decode` turns back into builtins only.

    Subclasses of builtin types are converted through the base type's own methods, so a value whose
    class overrides ``__eq__``/``__iter__`` is compared by its real contents, never by its own logic.
    """
    budget = [max_items]

    def enc(v, depth):
        if depth > MAX_DEPTH:
            raise Unencodable("value nested too deeply")
        budget[0] -= 1
        if budget[0] < 0:
            raise Unencodable("value has too many elements")
        t = type(v)
        if v is None or t is bool or t is str:
            return v
        if t is int:
            return v if v.bit_length() < _BIG_INT_BITS else {"I": format(v, "x")}
        if t is float:
            return v if math.isfinite(v) else {"F": repr(v)}
        if t is list:
            return [enc(x, depth + 1) for x in v]
        if t is tuple:
            return {"t": [enc(x, depth + 1) for x in v]}
        if t is dict:
            return {"d": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
        if t is set:
            return {"s": [enc(x, depth + 1) for x in v]}
        if t is frozenset:
            return {"f": [enc(x, depth + 1) for x in v]}
        if t is complex:
            return {"c": [enc(v.real, depth + 1), enc(v.imag, depth + 1)]}
        if t is bytes:
            return {"b": v.hex()}
        if t is bytearray:
            return {"y": v.hex()}
        # subclasses: read the contents with the base type's methods (never the subclass's own)
        if isinstance(v, int):
            return enc(int.__int__(v), depth)
        if isinstance(v, float):
            return enc(float.__float__(v), depth)
        if isinstance(v, str):
            return str.__str__(v)
        if isinstance(v, tuple):
            return {"t": [enc(x, depth + 1) for x in tuple.__iter__(v)]}
        if isinstance(v, list):
            return [enc(x, depth + 1) for x in list.__iter__(v)]
        if isinstance(v, dict):
            return {"d": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in dict.items(v)]}
        if isinstance(v, frozenset):
            return {"f": [enc(x, depth + 1) for x in frozenset.__iter__(v)]}
        if isinstance(v, set):
            return {"s": [enc(x, depth + 1) for x in set.__iter__(v)]}
        if isinstance(v, complex):
            return enc(complex(complex.__complex__(v)), depth)
        if isinstance(v, bytes):
            return {"b": bytes.hex(v)}
        raise Unencodable(f"value of type {type.__getattribute__(t, '__name__')!s}")

    return enc(value, 0)


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


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"))


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
    the program has run is bound to a local here first, so a program that rebinds builtins or this
    module's globals does not change what the harness calls.
    """
    _exec, _eval, _compile, _write, _exit = builtins.exec, builtins.eval, builtins.compile, os.write, os._exit
    _type, _len, _encode, _decode, _dumps, _brief = type, len, encode, decode, dumps, _short
    _BaseException, _Unencodable, _SyntaxError, _NameError = (
        BaseException,
        Unencodable,
        SyntaxError,
        NameError,
    )
    _stdout, _stderr = sys.stdout, sys.stderr

    max_value = job["limits"]["max_value_bytes"]

    def send(msg: dict) -> None:
        msg["k"] = nonce
        data = (_dumps(msg) + "\n").encode()
        if _len(data) > max_value and msg["e"] == "val":
            data = (
                _dumps({"e": "unenc", "i": msg["i"], "msg": "value too large", "k": nonce}) + "\n"
            ).encode()
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

    tests = job["tests"]
    # test code is trusted; compile it before any candidate code runs
    compiled = []
    for t in tests:
        if t["kind"] == "value":
            compiled.append(_compile(t["expr"], "<test>", "eval"))
        elif t["kind"] == "stmt":
            compiled.append(_compile(t["code"], "<test>", "exec"))
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

    for i in range(start, _len(tests)):
        test = tests[i]
        kind = test["kind"]
        outcome = None
        value = None
        fn = namespace.get(test["fn"]) if kind == "call" else None
        try:
            if kind == "value":
                value = _eval(compiled[i], namespace)
            elif kind == "call":
                if fn is None:
                    raise _NameError(f"name {test['fn']!r} is not defined")
                value = fn(*_decode(test["args"]))
                if test.get("not_none") and _type(value) is not bool:
                    value = value is not None
            else:
                _exec(compiled[i], namespace)
        except _BaseException as exc:
            outcome = {"e": "exc", "i": i, "type": _type(exc).__name__, "msg": _brief(exc)}
        fn = None
        if outcome is None:
            if kind == "stmt":
                outcome = {"e": "ok", "i": i}
            else:
                try:
                    outcome = {"e": "val", "i": i, "v": _encode(value)}
                except _Unencodable as exc:
                    outcome = {"e": "unenc", "i": i, "msg": _brief(exc)}
                except _BaseException as exc:
                    outcome = {"e": "exc", "i": i, "type": _type(exc).__name__, "msg": _brief(exc)}
        value = None
        send(outcome)
    send({"e": "done"})
    finish()
