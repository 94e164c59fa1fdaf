"""Statement tests' control flow, run in the worker: a process the candidate cannot reach.

Why the worker: a HumanEval ``check(candidate)`` is trusted code (it comes with the problem), but
while it ran in the candidate's process, that process could rewrite it (frames, ``gc``, patching
builtins, redefining the problem's helpers) and forge its outcome. The worker never runs candidate
code, runs as a different uid than the test process, is never forked from, and already reads the
test process's reports, so running the test code here costs no extra process, no extra hop and no
extra fork per sample (a second sandboxed process would cost a fork and a confinement per attempt,
and the pool's own process would cost a round trip through the worker for every call). The test
code runs with the real builtins and the *problem's* code (``context``: HumanEval's prompt, which
defines helpers such as ``poly`` or ``encode_cyclic``); every name the candidate provides is a proxy
that asks the test process to call the candidate's function with plain values (encoded with
:mod:`rlaif.sandbox.codec`) and returns its plain result. So the test's loops, comparisons and
helpers are the real ones whatever the candidate does in its own process, and the only thing the
candidate decides is what each of its own calls returns.

Guarantees: the outcome (passed, the first failing assert, the exception the test raised) is
decided here; an attempt that ends while a call is outstanding (crash, exit, timeout, protocol
violation) ends the test that way, even if the test code catches every exception; a value that is
not plain data fails the test even if the test code catches the error; the worker's own work per
test is bounded in time (the per-test timeout, by an interval timer) and in address space (the
test's memory limit on top of what the worker already uses).

What becomes stricter than running the test in-process: objects the candidate returns that are not
plain data (instances of its own classes, functions, modules) fail the test; arguments are copies,
so a test cannot observe the candidate mutating them (and the candidate cannot mutate the test's
data); an exception the candidate raises is re-raised here as the builtin exception of that name
(or :class:`CandidateError`), never as ``StopIteration``/``SystemExit``; generators the candidate
returns arrive as iterators over at most the codec's item limit. Standard library only.
"""

from __future__ import annotations

import builtins
import resource
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache

from rlaif.sandbox.codec import Unencodable, decode, encode
from rlaif.sandbox.reports import safe_text

# exceptions a test may legitimately expect from the candidate; anything else is CandidateError
_RERAISED = {
    name: cls
    for name, cls in vars(builtins).items()
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, StopIteration)
    and name not in ("StopAsyncIteration", "GeneratorExit")
}  # fmt: skip


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin one (or must not act as one)."""


class AttemptOver(BaseException):
    """The test process ended, timed out or broke the protocol during a call: the test ends so."""

    def __init__(self, outcome: dict):
        super().__init__(outcome.get("e"))
        self.outcome = outcome


class _NotPlain(BaseException):
    """The candidate returned a value that is not plain data (BaseException: not caught by tests)."""


class _OutOfTime(BaseException):
    pass


@lru_cache(maxsize=8192)  # a pool of workers sees every test of a data set again per sample
def _compiled(source: str, filename: str):
    return compile(source, filename, "exec")


class _Proxy:
    """The candidate's function ``name``: each call is one request to the test process."""

    __slots__ = ("_call", "_name", "__name__")

    def __init__(self, name: str, call: Callable):
        self._name, self._call, self.__name__ = name, call, name

    def __call__(self, *args, **kwargs):
        return self._call(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<candidate function {self._name}>"


class Handle:
    """An object the candidate returned that is not plain data. It stays in the test process; here
    it can only be passed back to the candidate's functions (``max_chain_length([Pair(5, 24)], 1)``).
    Any use that needs its value (comparing, truth, iterating, attributes) fails the test."""

    __slots__ = ("hid", "kind", "session")

    def __init__(self, hid: int, kind: str, session: Session):
        self.hid, self.kind, self.session = hid, kind, session

    def _refuse(self, *args, **kwargs):
        self.session.not_plain = f"the candidate's {self.kind} is not plain data"
        raise _NotPlain(self.session.not_plain)

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __len__ = __iter__ = _refuse
    __hash__ = __contains__ = __getitem__ = __getattr__ = __add__ = __radd__ = __int__ = _refuse
    __float__ = __index__ = __call__ = _refuse

    def __repr__(self) -> str:
        return f"<the candidate's {self.kind}>"


def _wire(value):
    """Encoded arguments, with a :class:`Handle` (in a list, tuple or dict value) as ``{"H": id}``
    and a builtin (``int``) as ``{"B": name}``."""
    t = type(value)
    if t is Handle:
        return {"H": value.hid}
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and getattr(builtins, name, None) is value:
        return {"B": name}  # a builtin type or function (``remove_datatype(xs, int)``)
    if t is list:
        return [_wire(x) for x in value]
    if t is tuple:
        return {"t": [_wire(x) for x in value]}
    if t is dict:
        return {"d": [[encode(k), _wire(x)] for k, x in value.items()]}
    return encode(value)


def _shown(value) -> str:
    if type(value) is int and value.bit_length() > 4000:
        return f"<int of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception as exc:  # an int beyond the int/str digit limit
        text = f"<{type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= 120 else text[:120] + "..."


class Session:
    """One statement test run here. ``request(name, args, kwargs)`` sends one call to the test
    process and returns its reply message (or raises :class:`AttemptOver`)."""

    def __init__(self, request: Callable[[str, list, dict], dict]):
        self.request = request
        self.over: AttemptOver | None = None
        self.not_plain: str | None = None
        self.calls = 0
        self.last = self.shown = ""  # what the last call returned, for a failed assert's diagnostics

    def call(self, name: str, args: tuple, kwargs: dict):
        if self.over is not None:
            raise self.over
        try:
            try:
                wire_args, wire_kwargs = encode(list(args)), encode(kwargs)
            except Unencodable:  # handles of the candidate's own objects, passed back to it
                wire_args, wire_kwargs = _wire(list(args)), _wire(kwargs)
        except Unencodable as exc:
            raise TypeError(f"an argument for {name}() is not plain data ({exc})") from None
        self.calls += 1
        try:
            reply = self.request(name, wire_args, wire_kwargs)
        except AttemptOver as exc:
            self.over = exc
            raise
        if reply.get("e") == "raise":
            cls = _RERAISED.get(str(reply.get("type")), None)
            message = str(reply.get("msg", ""))
            if cls is None:
                raise CandidateError(f"{reply.get('type')}: {message}")
            raise cls(message)
        if "h" in reply:
            return Handle(reply["h"], f"{str(reply.get('t', ''))[:60]} object", self)
        if "u" in reply:
            self.not_plain = f"{name}() returned a value that cannot be compared safely ({reply['u']})"
            raise _NotPlain(self.not_plain)
        try:
            value = decode(reply.get("v"))
        except (ValueError, TypeError, RecursionError, OverflowError) as exc:
            self.not_plain = f"{name}() returned an undecodable value ({exc})"
            raise _NotPlain(self.not_plain) from None
        self.shown = _shown(value)
        self.last = f"got {self.shown} from {name}(...)"
        return iter(value) if reply.get("g") else value


def namespace(context: str, resolved: dict, modules: list[str], session: Session, bases: dict) -> dict:
    """The test's globals: the real builtins, the problem's code (run once per job and attempt:
    ``bases`` keeps it), then the candidate's names (a proxy for each function, the plain value for
    each constant, a handle for anything else), then the stdlib modules the test names without
    importing them."""
    base = bases.get(context)
    if base is None:
        base = {"__name__": "__test__", "__builtins__": builtins}
        if context:
            exec(_compiled(context, "<problem>"), base)
        bases[context] = base
    scope = dict(base)
    for name, how in resolved.items():
        if isinstance(how, dict) and "v" in how:
            scope[name] = decode(how["v"])
        elif isinstance(how, dict) and how.get("f"):
            scope[name] = _Proxy(name, session.call)
        elif isinstance(how, dict) and type(how.get("h")) is int:
            scope[name] = Handle(how["h"], f"{str(how.get('t', ''))[:60]} object", session)
        elif isinstance(how, dict) and "u" in how:  # too large to send: any use fails the test
            scope[name] = Handle(-1, f"{name} ({str(how['u'])[:60]})", session)
        else:
            scope.pop(name, None)  # the candidate did not define it: a NameError, as in Python
    for mod in modules:
        if mod not in scope:
            try:
                scope[mod] = __import__(mod)
            except ImportError:
                pass
    return scope


def _assert_site(exc: BaseException, source: str) -> str:
    """``line N: <source line>`` of the innermost frame of the test code in a traceback."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<test>":
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None:
        return ""
    lines = source.splitlines()
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return f"line {line}: {text[:200]}"


def _brief(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    return safe_text(text[:300])


def run_statement(test: dict, resolved: dict, session: Session, deadline: float, bases: dict) -> dict:
    """Run one statement test here; returns its outcome (``ok``, ``exc``, ``unenc``), or raises
    :class:`AttemptOver` (the attempt ended during the test, or its time ran out). Call it inside
    :func:`judging`."""
    code = test["code"]
    outcome: dict
    try:
        signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001))
        try:
            modules = list(test.get("modules") or ())
            scope = namespace(test.get("context") or "", resolved, modules, session, bases)
            exec(_compiled(code, "<test>"), scope)
            outcome = {"e": "ok"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _OutOfTime:
        raise AttemptOver({"e": "timeout"}) from None
    except AttemptOver:
        raise
    except _NotPlain as exc:
        outcome = {"e": "unenc", "msg": str(exc)}
    except MemoryError:
        outcome = {"e": "exc", "type": "MemoryError", "msg": "the test's values exceed the memory limit"}
    except BaseException as exc:
        where = _assert_site(exc, code)
        outcome = {"e": "exc", "type": type(exc).__name__, "msg": _brief(exc), "line": where}
        if session.last and isinstance(exc, AssertionError):
            outcome["msg"] = safe_text(f"{outcome['msg']} (last call: {session.last})".strip())
            outcome["got"], outcome["calls"] = safe_text(session.shown), session.calls
    if session.over is not None:  # the test code caught it: the attempt is over all the same
        raise session.over
    if session.not_plain is not None:
        return {"e": "unenc", "msg": session.not_plain}
    if time.monotonic() > deadline:
        raise AttemptOver({"e": "timeout"})
    return outcome


def _out_of_time(signum, frame):
    signal.setitimer(signal.ITIMER_REAL, 0.05)  # again and again, should test code swallow it
    raise _OutOfTime()


@contextmanager
def judging(extra: int):
    """What :func:`run_statement` needs around a job: the interval timer's handler (the per-test
    time limit), and the worker's address space capped at what it uses now plus ``extra`` (both
    restored afterwards), so values a test builds from the candidate's results cannot exhaust the
    worker (a MemoryError fails that test)."""
    previous = signal.signal(signal.SIGALRM, _out_of_time)
    try:
        with _memory_limit(extra):
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _memory_limit(extra: int):
    old = None
    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * resource.getpagesize()
        old = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (used + extra, old[1]))
    except (OSError, ValueError):
        old = None
    try:
        yield
    finally:
        if old is not None:
            resource.setrlimit(resource.RLIMIT_AS, old)
