"""Helpers shared by the sandbox tests (imported by name: this directory is on sys.path under pytest)."""

from __future__ import annotations

from pathlib import Path

from rlaif.sandbox import Job, Limits, assert_test


def sandbox_processes(pool) -> list[int]:
    """Host pids of live processes running as one of the pool's sandbox uids (should always be [])."""
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
