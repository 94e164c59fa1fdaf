"""Shared by the benchmarks that measure each setting in its own process (vLLM reads its environment
when its processes start, and a fresh process starts every setting from the same state): run one
child, take the JSON line it printed last, and stop with the child's own error when it failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_child(cmd: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    """The last ``{...}`` line ``cmd`` printed to stdout; ``what`` names the setting in the error."""
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"the measurement {what} failed (exit {out.returncode})")
    return json.loads(lines[-1])
