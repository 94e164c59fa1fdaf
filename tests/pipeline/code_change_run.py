"""``python code_change_run.py CONFIG``: ``rlaif run CONFIG`` whose policy-building stage (``prepare/policy``),
once it has built the model, edits the rlaif package this process runs, as a ``git pull`` into an
editable install would mid-run: ``rlaif/pairs.py`` gets a comment line and ``rlaif/added_by_pull.py``
appears, the first time only (the comment marks it done).

The hook lives here, with the tests, and wraps the build stage from outside: production code carries
no test state. It refuses to run on this checkout's own package: it is meant for a copy put first on
``PYTHONPATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rlaif
from rlaif.pipeline import stages

MARK = "# edited while a run was going\n"
CHECKOUT = Path(__file__).resolve().parents[2] / "rlaif"


def edit_package() -> None:
    pkg = Path(rlaif.__file__).resolve().parent
    if pkg == CHECKOUT:
        raise SystemExit(
            f"code_change_run.py edits the rlaif it runs; put a copy first on PYTHONPATH, not {pkg}"
        )
    pairs_py = pkg / "pairs.py"
    if MARK not in pairs_py.read_text():
        pairs_py.write_text(pairs_py.read_text() + MARK)
        (pkg / "added_by_pull.py").write_text("X = 1\n")


def install() -> None:
    build = stages.build_policy

    def build_then_edit(cfg, stage_dir):
        summary = build(cfg, stage_dir)
        edit_package()
        return summary

    stages.build_policy = build_then_edit


if __name__ == "__main__":
    install()
    from rlaif.cli import main

    sys.argv = ["rlaif", "run", *sys.argv[1:]]
    sys.exit(main())
