"""Kill a replica while a request is known to be outstanding on it, without racing the clock.

How: the replica's server is frozen (SIGSTOP) once the router counts a request outstanding on it. A
frozen server answers nothing more, but an answer it wrote just before the freeze may still sit in the
client's socket; so the helper waits until the other replica has finished two more requests (the
client's event loop has read its sockets since), then reads the counter again. Still >= 1: those
requests can now only end by failing when the server is killed (a retry) or by losing to a straggler
hedge on the other replica - which is what the tests accept as recovery. Back to 0: the server is
thawed and the helper tries again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def group_members(group: int) -> list[int]:
    """Pids in process group ``group`` (read from /proc; Linux only)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group:
            pids.append(int(entry.name))
    return pids


def server_pids(group: int) -> list[int]:
    """The group's server processes, without rlaif.engines.reaper's reaper (the group leader) and
    its sentinel: those must stay awake to kill the server when its actor dies."""
    pids = []
    for pid in group_members(group):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rlaif.engines.reaper" not in cmdline:
            pids.append(pid)
    return pids


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def freeze_with_request_outstanding(
    replica, other, pids: Callable[[], list[int]], busy: Callable[[], bool], timeout_s: float = 300.0
) -> int:
    """Freeze ``replica``'s server (its ``pids()``) at a moment a request is outstanding on it.

    ``replica``/``other`` are the router's :class:`~rlaif.engines.replicas.Replica` states, ``busy``
    says whether the batch still runs. Returns the number of requests left outstanding on the frozen
    server (>= 1); raises AssertionError if the batch ended before that could be arranged."""
    deadline = time.monotonic() + timeout_s
    while busy() and time.monotonic() < deadline:
        if replica.outstanding >= 1 and replica.served >= 2:
            frozen = pids()
            signal_pids(frozen, signal.SIGSTOP)
            other_served = other.served
            while busy() and other.served < other_served + 2 and time.monotonic() < deadline:
                time.sleep(0.002)
            if replica.outstanding >= 1:
                return replica.outstanding
            signal_pids(frozen, signal.SIGCONT)
        time.sleep(0.002)
    raise AssertionError("the batch ended before a request could be caught outstanding on the replica")
