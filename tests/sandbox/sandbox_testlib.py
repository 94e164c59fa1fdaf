"""Helpers shared by the sandbox tests (imported by name: this directory is on sys.path under pytest)."""

from __future__ import annotations

import os
from pathlib import Path

from rlaif.sandbox import Job, Limits, assert_test


def sandbox_processes(pool) -> list[int]:
    """Host pids of live processes running as one of the pool's sandbox uids (should always be []);
    without root (user namespaces: no uid of their own), those in a worker's PID namespace but its
    zygote."""
    if pool.isolation.get("userns"):
        return _in_worker_pid_namespaces(pool)
    uids = set(pool.sandbox_uids())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:"):
                if int(line.split()[1]) in uids:
                    found.append(int(entry.name))
                break
    return found


def run(pool, program: str, *tests: str, **limits):
    """Run one program against assert lines (``assert True`` when none) with optional limit overrides."""
    job = Job(program=program, tests=[assert_test(t) for t in tests] or [assert_test("assert True")])
    return pool.run_one(job, limits=Limits(**limits) if limits else None)


def assert_healthy(pool) -> None:
    """The harness survived: a trivial program still passes, and nothing of earlier runs lives on."""
    res = run(pool, "def f(x):\n    return x + 1\n", "assert f(1) == 2")
    assert res.status == "passed", res.diagnostics
    assert sandbox_processes(pool) == []


def _in_worker_pid_namespaces(pool) -> list[int]:
    spaces = set()
    for worker in pool._workers:
        try:
            spaces.add(os.readlink(f"/proc/{worker.proc.pid}/ns/pid_for_children"))
        except OSError:
            pass
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or os.readlink(entry / "ns" / "pid") not in spaces:
                continue
            nspid = next(x for x in (entry / "status").read_text().splitlines() if x.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if nspid.split()[-1] != "1":  # the zygote, PID 1 of the namespace, is the one that stays
            found.append(int(entry.name))
    return found
