"""The worker's side of the calls into a test process: what T is told about each test, what the
worker accepts of T's answer to "how do the test's names resolve", and the channels of one attempt,
read by the driver's main loop and by the calls statement tests make while they run in the worker.

Guarantees: T is told a statement test's names only, never its code (and so never its expected
values); the names T resolves are accepted only for the names the test needs; a request is
written whole or dropped once T is gone (its exit is reported by the zygote). Standard library only.
"""

from __future__ import annotations

import json
import os
import select
import time

from rlaif.sandbox.frames import read_message
from rlaif.sandbox.reports import AttemptState


def accepted_names(reported: dict, wanted: list) -> dict:
    """How T says the test's names resolve, for the names the test needs only: T cannot bind
    anything else in the test's scope (a problem helper, a builtin); a name it left out is missing."""
    return {name: reported[name] if isinstance(reported.get(name), dict) else {"m": 1} for name in wanted}


def for_sandbox(test: dict) -> dict:
    """What T is told about a test: a statement test's names only (its code, and so its expected
    values, stays here), or for an assert whose calls are made ahead, those calls' sources."""
    if test["kind"] != "stmt":
        return test
    if test.get("calls"):
        return {"kind": "value", "holes": [c[0] for c in test["calls"]], "iters": [], "each": 1}
    return {"kind": "stmt", "names": test["names"]}


class AttemptIO:
    """The driver's view of one attempt's channels, shared by its main loop and by the calls a
    statement test makes while it runs here."""

    def __init__(self, driver, st: AttemptState, sel, zfd: int, fds: tuple):
        self.driver, self.st, self.sel, self.zfd, self.fds = driver, st, sel, zfd, fds
        self.status: bytes | None = None

    def pump(self, deadline: float) -> bool:
        """Wait (until ``deadline`` at most) for what is readable and consume it; True when a
        test (or the load) just finished. A report of the zygote (T exited) is kept in ``status``."""
        progressed = False
        for key, _ in self.sel.select(max(0.0, deadline - time.monotonic())):
            if key.fd == self.zfd:
                self.status = read_message(self.driver.zygote)  # T exited; everything is swept
                self.sel.unregister(self.zfd)
            elif self.driver._read(key.fd, self.st, *self.fds, self.sel):
                progressed = True
        return progressed

    def send(self, fd: int, msg: dict) -> None:
        """One request to T on the report socket (blocking until written, or T's end is gone)."""
        data = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                select.select([], [fd], [], 0.05)
            except OSError:
                return  # T is gone: its exit is reported by the zygote

    def ended(self) -> dict:
        if self.st.violation is not None:
            return {"e": "violation", "msg": self.st.violation}
        return {"e": "exit"}
