"""The worker's reading of one attempt's report stream: order, nonce and size enforced.

The test process writes one JSON message per line (see :mod:`rlaif.sandbox.harness` for the
protocol). :class:`AttemptState` accepts a message only when it carries the attempt's nonce, fits
the phase (load, then tests in order, then done) and fits the running test's kind (``val``/``unenc``/
``exc`` only for value and call tests; ``stmt`` and the replies to the worker's calls, in order, only
for statement tests, whose outcome only the worker decides); anything else is a protocol violation
that ends the attempt. Every message it keeps is trimmed to known keys and bounded lengths, and its
text made encodable (:func:`clean`, :func:`safe_text`: a lone surrogate in an exception message can
never stop results from being written). The whole stream is capped (``max_report_bytes``), and so
is each line. It never judges a value: that happens in the parent (:mod:`rlaif.sandbox.verdict`).
Standard library only.
"""

from __future__ import annotations

import json
import time


class AttemptState:
    """Parses T's report stream for one attempt, enforcing order and the nonce."""

    def __init__(self, start: int, nonce: str, limits: dict, kinds: list[str]):
        self.current, self.nonce, self.kinds = start, nonce, kinds
        self.statement: tuple[int, dict] | None = None  # a statement test waiting for the worker
        self.expect: int | None = None  # the call of the candidate the worker is waiting for
        self.reply: dict | None = None
        self.phase = "load"  # load -> tests -> done | over (load failed)
        self.results: dict[int, dict] = {}
        self.load_msg: dict | None = None
        self.violation: str | None = None
        self.confined = False
        self.confine_error = ""
        self.over_at = 0.0
        self.started = self.confined_at = self.loaded_at = time.monotonic()  # timing, for reports
        self.buf = b""
        self.max_line = limits["max_value_bytes"] + 4096
        self.budget = limits["max_report_bytes"]

    def feed(self, chunk: bytes, n: int) -> bool:
        self.budget -= len(chunk)
        if self.budget < 0:
            self.violation = "the test process sent more report data than allowed"
            return False
        self.buf += chunk
        progressed = False
        while b"\n" in self.buf and self.violation is None:
            line, self.buf = self.buf.split(b"\n", 1)
            progressed |= self._message(line, n)
        if len(self.buf) > self.max_line:
            self.violation = "a report message exceeds the size limit"
        return progressed

    def _message(self, line: bytes, n: int) -> bool:
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError, MemoryError):  # deep nesting raises RecursionError
            self.violation = "malformed report message"
            return False
        if type(msg) is not dict or msg.get("k") != self.nonce:
            self.violation = "report message without the run's nonce (forged or corrupted)"
            return False
        event = msg.get("e")
        if self.phase == "load" and event in ("load_ok", "load_err"):
            self.load_msg = {"ok": True} if event == "load_ok" else clean(msg)
            self.phase = "tests" if event == "load_ok" else "over"
            self.over_at = self.loaded_at = time.monotonic()
            return True
        if self.phase == "tests" and event in ("val", "exc", "unenc", "stmt", "ret", "raise"):
            if msg.get("i") != self.current or self.current >= len(self.kinds):
                self.violation = f"report for test {msg.get('i')!r} while test {self.current} was running"
                return False
            stmt = self.kinds[self.current] == "stmt"
            if stmt != (event in ("stmt", "ret", "raise")):
                self.violation = f"report message {event!r} for a {self.kinds[self.current]} test"
                return False
            if event == "stmt":
                return self._statement_started(msg)
            if event in ("ret", "raise"):
                return self._reply(msg)
            self.results[self.current] = clean(msg)
            self.current += 1
            return True
        if self.phase == "tests" and event == "done" and self.current == n:
            self.phase, self.over_at = "done", time.monotonic()
            return False
        if self.phase in ("done", "over"):
            return False  # nothing after the end can change a recorded outcome
        self.violation = f"unexpected report message {event!r} during {self.phase}"
        return False

    def _statement_started(self, msg: dict) -> bool:
        names = msg.get("names")
        if self.statement is not None or type(names) is not dict:
            self.violation = "malformed or repeated start of a statement test"
            return False
        self.statement = (self.current, names)
        return True

    def _reply(self, msg: dict) -> bool:
        if self.expect is None or msg.get("c") != self.expect or self.reply is not None:
            self.violation = "a reply to a call the worker did not make"
            return False
        self.reply = {k: msg[k] for k in ("e", "v", "u", "g", "h", "t", "type", "msg") if k in msg}
        for key in ("type", "msg", "t", "u"):
            if key in self.reply:
                self.reply[key] = safe_text(str(self.reply[key])[:500])
        if "h" in self.reply and type(self.reply["h"]) is not int:
            self.violation = "malformed reply to a call"
            return False
        return True

    def statement_done(self, outcome: dict) -> None:
        """The worker decided the running statement test: record it, the next test runs."""
        self.results[self.current] = outcome
        self.statement, self.expect, self.reply = None, None, None
        self.current += 1


def safe_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) escaped, so every result can be
    written out whatever a program put in its messages."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def clean(msg: dict) -> dict:
    out = {"e": msg.get("e")}
    for key in ("type", "msg", "line", "v", "syntax"):
        if key in msg:
            out[key] = msg[key]
    if isinstance(out.get("msg"), str):
        out["msg"] = safe_text(out["msg"][:500])
    if isinstance(out.get("type"), str):
        out["type"] = safe_text(out["type"][:100])
    return out
