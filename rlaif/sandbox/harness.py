"""The test harness that runs inside the sandboxed process (its codec is :mod:`rlaif.sandbox.codec`).

Why values and not verdicts: the harness shares its process with the code under test, and that code
can do anything the harness can (monkeypatch it, read its frames, write to its reporting pipe, exit).
So the harness never decides pass or fail, and never sees test code. For test code (assert lines
and statement tests, run in the worker by :mod:`rlaif.sandbox.trusted`) it only answers the
worker's calls of the candidate's functions: each result is encoded as plain data (builtin types
only, read with the base types' own methods, no user ``__eq__``), or kept here as a handle when it
is not plain data. For call tests (MBPP+) it reports the call's encoded result, and for the older
value plan (:func:`rlaif.sandbox.spec.value_test`) the values of the holes; the parent compares.

What the candidate cannot patch: everything the harness calls after the program has run is bound
before it runs -- the codec and JSON writer at import (in the zygote), and in :func:`run_in_child`
the builtins, the report channel (:func:`_make_channel`), the reporters test code calls
(:func:`_make_reporters`) and the names it injects into test scopes. Rebinding builtins, ``json``
or this module's (or the codec's) globals therefore changes nothing the harness does, and trace or
profile hooks the program installs are removed before each test and before its outcome is sent. Not
guaranteed: code that reaches into the harness's frames, closures or function objects
(``sys._getframe``, ``gc``, replacing ``encode.__code__``) can send any message it likes with the
attempt's nonce; the parent's rules (values only for value tests,
"ok" only for statement tests, order and nonce checks) are what keep value tests sound.

Message protocol (one JSON object per line on fd 3, a socket, each carrying the attempt's nonce
``k``): ``load_ok`` | ``load_err`` (program failed to compile or run) | ``val`` (test ``i`` produced
the values ``v``) | ``exc`` (test ``i`` raised) | ``unenc`` (a value of an unsupported type) |
``stmt`` (statement test ``i`` starts: how each name it needs resolves) | ``ret`` / ``raise`` (the
answer to the worker's call ``c``) | ``done``. The worker writes its calls (``{"c", "n", "a", "kw"}``)
and ``{"next": 1}`` (the statement test is over) on the same socket. Anything else, or a message
for the wrong test or call, is a protocol violation.

This module imports only the standard library: it is loaded by the sandbox zygote, which stays small
so that forking it is cheap.
"""

from __future__ import annotations

import builtins
import itertools
import json
import os
import sys

# re-exported: the codec lived here before it got its own module, and callers import it from here
from rlaif.sandbox.codec import MAX_DEPTH, MAX_ITEMS, Unencodable, decode, dumps, encode

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "Unencodable", "decode", "dumps", "encode", "run_in_child"]

PLAIN_NAME = "__rlaif_plain__"
# the C scanner, made at import (in the zygote): reading the worker's requests calls nothing the
# program can patch (``json.loads`` looks up module globals and builtins at call time)
_SCAN_ONCE = json.decoder.JSONDecoder().scan_once  # the C scanner where there is one
_PLAIN_TYPES = (str, bytes, bytearray, list, tuple, dict, set, frozenset, int, float, complex, bool)


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


def _make_channel(report_fd: int, nonce: str, max_value: int):
    """``send(msg)`` (one message, stamped with the nonce, on the report pipe) and ``finish(code)``
    (flush and exit), with every name they use bound now, before the program runs."""
    _write, _exit, _len, _str_encode, _dumps, _BaseException = (
        os.write,
        os._exit,
        len,
        str.encode,
        dumps,
        BaseException,
    )
    _stdout, _stderr = sys.stdout, sys.stderr

    def send(msg: dict) -> None:
        msg["k"] = nonce
        try:
            data = _str_encode(_dumps(msg) + "\n")
        except _BaseException:
            small = {"e": "unenc", "i": msg.get("i"), "msg": "unreportable", "k": nonce}
            if msg.get("e") == "ret":
                small = {"e": "ret", "i": msg.get("i"), "c": msg.get("c"), "u": "unreportable", "k": nonce}
            data = _str_encode(_dumps(small) + "\n")
        if _len(data) > max_value and msg["e"] in ("val", "ret"):
            small = {"e": "unenc", "i": msg["i"], "msg": "value too large", "k": nonce}
            if msg["e"] == "ret":
                small = {"e": "ret", "i": msg["i"], "c": msg["c"], "u": "value too large", "k": nonce}
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

    return send, finish


def _make_reporters(send, max_value: int):
    """What test code calls while it runs, bound now: ``plain`` (a value as encoded plain data; an
    iterator a test consumes is materialised first), ``scope_for`` (the globals value-test holes run
    in: a copy of the program's namespace with the builtins of before the program ran, whatever it
    rebinds, and ``__rlaif_plain__``, which launders comparisons inside holes), and ``serve_calls``
    (a statement test: answer the worker's calls of the candidate's functions until it says next)."""
    _encode, _decode, _list, _isinstance, _brief, _type, _callable = (
        encode, decode, list, isinstance, _short, type, callable,
    )  # fmt: skip
    _Unencodable, _BaseException, plain_types = Unencodable, BaseException, _PLAIN_TYPES
    _dict, plain_name, _hasattr, _islice = dict, PLAIN_NAME, hasattr, itertools.islice
    _read, _scan, _bytes_find, _utf8 = os.read, _SCAN_ONCE, bytes.find, bytes.decode
    _len, _tuple, _str, type_name, _dumps = len, tuple, str, type.__dict__["__name__"].__get__, dumps
    clean_builtins = _dict(builtins.__dict__)
    pending = [b""]

    def plain(value, consumed: bool = False):
        try:
            return _encode(value)
        except _Unencodable:
            if not consumed or _isinstance(value, plain_types):
                raise
        return _encode(_list(value))

    def launder(value):
        return _decode(_encode(value))

    def scope_for(namespace: dict) -> dict:
        scope_globals = _dict(namespace)
        scope_globals["__builtins__"] = clean_builtins
        scope_globals[plain_name] = launder
        return scope_globals

    def request():
        """The worker's next request on the report socket (None at end of file)."""
        while True:
            cut = _bytes_find(pending[0], b"\n")
            if cut >= 0:
                line, pending[0] = pending[0][:cut], pending[0][cut + 1 :]
                return _scan(_utf8(line, "utf-8"), 0)[0]
            chunk = _read(3, 1 << 16)
            if not chunk:
                return None
            pending[0] += chunk

    def resolve(namespace: dict, names: list, handles: list) -> dict:
        out = {}
        for name in names:
            if name not in namespace:
                out[name] = {"m": 1}
                continue
            value = namespace[name]
            if _callable(value):
                out[name] = {"f": 1}
                continue
            try:
                encoded = _encode(value)
                big = _len(_dumps(encoded)) > max_value
                out[name] = {"u": "value too large"} if big else {"v": encoded}
            except _BaseException:  # not plain data (a tree the setup built): a handle to pass back
                handles.append(value)
                out[name] = {"h": _len(handles) - 1, "t": type_name(_type(value))}
        return out

    def unwire(obj, handles: list):
        """Decoded arguments, with ``{"H": n}`` replaced by the object behind handle ``n``."""
        try:
            return _decode(obj)
        except _BaseException:
            pass
        t = _type(obj)
        if t is _list:
            return [unwire(x, handles) for x in obj]
        if t is _dict and _len(obj) == 1:
            if "H" in obj:
                return handles[obj["H"]]
            if "B" in obj:
                return clean_builtins[obj["B"]]
            if "t" in obj:
                return _tuple(unwire(x, handles) for x in obj["t"])
            if "d" in obj:
                return {_decode(k): unwire(x, handles) for k, x in obj["d"]}
        return _decode(obj)  # malformed: raises, and the call fails

    def answer(i: int, seq, fn, req: dict, handles: list) -> dict:
        try:
            value = fn(*unwire(req["a"], handles), **unwire(req["kw"], handles))
        except _BaseException as exc:
            return {"e": "raise", "i": i, "c": seq, "type": _type(exc).__name__, "msg": _brief(exc)}
        try:
            return {"e": "ret", "i": i, "c": seq, "v": _encode(value)}
        except _Unencodable as exc:
            if _isinstance(value, plain_types):
                return {"e": "ret", "i": i, "c": seq, "u": _brief(exc)}
            if not _hasattr(_type(value), "__next__"):  # kept here; the worker may pass it back
                handles.append(value)
                return {"e": "ret", "i": i, "c": seq, "h": _len(handles) - 1, "t": type_name(_type(value))}
        try:  # an iterator (a generator function's result): its items, as the test would consume them
            return {"e": "ret", "i": i, "c": seq, "g": 1, "v": _encode(_list(_islice(value, MAX_ITEMS + 1)))}
        except _BaseException as exc:
            return {"e": "ret", "i": i, "c": seq, "u": _brief(exc)}

    def serve_calls(i: int, names: list, namespace: dict) -> None:
        handles: list = []
        try:
            resolved = resolve(namespace, names, handles)
        except _BaseException:  # the program broke what resolving needs: every name is a call
            resolved = {name: {"f": 1} for name in names}
        send({"e": "stmt", "i": i, "names": resolved})
        while True:
            req = request()
            if req is None or "c" not in req:
                return
            seq = req["c"]
            try:
                fn = namespace.get(req.get("n"))
                if fn is None:
                    reply = {"e": "raise", "i": i, "c": seq, "type": "NameError", "msg": _str(req.get("n"))}
                else:
                    reply = answer(i, seq, fn, req, handles)
            except _BaseException:
                reply = {"e": "raise", "i": i, "c": seq, "type": "RuntimeError", "msg": "the call failed"}
            send(reply)

    return plain, scope_for, serve_calls


def _compile_tests(tests: list, _compile=builtins.compile) -> list:
    """Test code is trusted: it is compiled before any candidate code runs."""
    return [
        [_compile(h, "<test>", "eval") for h in t["holes"]] if t["kind"] == "value" else None for t in tests
    ]


def _load_program(job: dict, send) -> dict | None:
    """Compile and run the program (then the job's setup code) in a fresh namespace; returns it, or
    None after reporting ``load_err``. Everything used once the program has run is bound on entry."""
    _exec, _compile, _type, _brief, _line, _BaseException = (
        builtins.exec, builtins.compile, type, _short, _candidate_line, BaseException,
    )  # fmt: skip
    setup = _compile(job["setup"], "<setup>", "exec") if job.get("setup") else None
    try:
        program = _compile(job["program"], "<candidate>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        info = {"e": "load_err", "syntax": True, "type": _type(exc).__name__, "msg": _brief(exc)}
        info["line"] = getattr(exc, "lineno", None)
        send(info)
        return None
    namespace: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    failure = None
    try:
        _exec(program, namespace)
        if setup is not None:
            _exec(setup, namespace)
    except _BaseException as exc:
        failure = {"e": "load_err", "syntax": False, "type": _type(exc).__name__, "msg": _brief(exc)}
        failure["line"] = _line(exc.__traceback__)
    if failure is not None:  # sent outside the except block: the traceback (and its memory) is gone
        send(failure)
        return None
    return namespace


def run_in_child(job: dict, start: int, report_fd: int, nonce: str) -> None:
    """Run the program, then tests ``start..n-1``, reporting each through ``report_fd``; never returns.

    Called in the freshly forked, already confined test process. Every name the harness needs after
    the program has run is bound to a local (or a closure made here) first, so a program that
    rebinds builtins, ``json`` or this module's globals does not change what the harness calls. A
    program that deliberately reaches into the harness's frames can still write any message it
    likes: that is why the parent judges value tests only from values, and accepts "ok" only for
    statement tests (see :mod:`rlaif.sandbox.spec`).
    """
    _eval, _type, _len, _range, _bool = builtins.eval, type, len, range, bool
    _encode, _decode, _brief, _settrace, _setprofile = encode, decode, _short, sys.settrace, sys.setprofile
    _BaseException, _Unencodable, _NameError = BaseException, Unencodable, NameError
    tests = job["tests"]

    def each(hole, scope_globals) -> dict:
        """One call made ahead: its encoded result, the exception it raised, or why it cannot be sent."""
        try:
            value = _eval(hole, scope_globals)
        except _BaseException as exc:
            return {"x": [_type(exc).__name__, _brief(exc)]}
        try:
            return {"v": _encode(value)}
        except _BaseException as exc:
            return {"u": _brief(exc)}

    send, finish = _make_channel(report_fd, nonce, job["limits"]["max_value_bytes"])
    compiled = _compile_tests(tests)
    plain, scope_for, serve_calls = _make_reporters(send, job["limits"]["max_value_bytes"])
    namespace = _load_program(job, send)
    if namespace is None:
        finish()
        return
    send({"e": "load_ok"})

    for i in _range(start, _len(tests)):
        _settrace(None)  # a trace or profile hook the program left behind does not follow the harness
        _setprofile(None)
        test = tests[i]
        kind = test["kind"]
        if kind == "stmt":  # the worker runs the test code and decides; we only answer its calls
            serve_calls(i, test["names"], namespace)
            continue
        outcome = None
        value = None
        fn = namespace.get(test["fn"]) if kind == "call" else None
        scope_globals = scope_for(namespace)
        try:
            if kind == "value" and test.get("each"):  # calls made ahead: one outcome per call
                value = [each(compiled[i][j], scope_globals) for j in _range(_len(compiled[i]))]
            elif kind == "value":
                holes, iters = compiled[i], test["iters"]
                value = [plain(_eval(holes[j], scope_globals), iters[j]) for j in _range(_len(holes))]
            else:
                if fn is None:
                    raise _NameError(f"name {test['fn']!r} is not defined")
                value = fn(*_decode(test["args"]))
                if test.get("not_none") and _type(value) is not _bool:
                    value = value is not None
                value = _encode(value)
        except _Unencodable as exc:
            outcome = {"e": "unenc", "i": i, "msg": _brief(exc)}
        except _BaseException as exc:
            outcome = {"e": "exc", "i": i, "type": _type(exc).__name__, "msg": _brief(exc)}
        fn = scope_globals = None
        if outcome is None:
            outcome = {"e": "val", "i": i, "v": value}
        value = None
        _settrace(None)
        _setprofile(None)
        send(outcome)
    send({"e": "done"})
    finish()
