"""How a CLI test checks that an ``rlaif`` command refused its input the way a user should see it."""

from __future__ import annotations

import subprocess


def fails(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, exactly one ``error:`` line, holding every needle; returns that line."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
