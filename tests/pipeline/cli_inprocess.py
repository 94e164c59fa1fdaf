"""The CLI in-process for the pipeline tests: ``rlaif.cli.main(argv)`` with its output captured, as a
CompletedProcess, so validation is tested without a Python start per case."""

from __future__ import annotations

import contextlib
import io
import subprocess


def rlaif(*args: str) -> subprocess.CompletedProcess:
    from rlaif.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
