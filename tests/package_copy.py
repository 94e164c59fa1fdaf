"""A copy of this checkout's rlaif package, run in a subprocess: for tests that change rlaif's files
under a running ``rlaif run`` (code-version checks) without touching the checkout itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_package(tmp_path: Path) -> Path:
    """A folder holding a copy of this checkout's rlaif package (no caches) and of the templates beside
    it (``prompts/``, found next to the package as in a checkout), for ``PYTHONPATH``."""
    code = tmp_path / "code"
    shutil.copytree(REPO / "rlaif", code / "rlaif", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "prompts", code / "prompts")
    return code


def run_python(args: list[str], code: Path, log: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` with the copy in ``code`` (only) on ``PYTHONPATH``; its output kept in ``log``."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=code, timeout=1800
    )
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    return proc
