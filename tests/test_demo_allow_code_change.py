"""``rlaif demo --allow-code-change`` reaches the runner as ``rlaif run``'s flag does, and its resume
hint repeats it (the behaviour itself, warning and recording, is tested end to end on ``rlaif run``
in tests/pipeline/test_code_change_allowed.py: both commands share ``_execute``)."""

from __future__ import annotations

import pytest

from rlaif.commands import interrupts
from rlaif.commands import run as run_command


class _Runner:
    made: list = []

    def __init__(self, resolved, allow_code_change=False):
        self.run_dir = resolved.config.run_dir()
        _Runner.made.append(allow_code_change)

    def plan(self):
        return []


@pytest.mark.parametrize("flag", [True, False])
def test_demo_passes_the_flag_to_the_runner_and_the_resume_hint(monkeypatch, tmp_path, flag):
    import rlaif.pipeline.runner

    hints = []
    monkeypatch.setattr(rlaif.pipeline.runner, "Runner", _Runner)
    monkeypatch.setattr(interrupts, "set_resume_hint", hints.append)
    _Runner.made = []
    run_command.demo([f"output_dir={tmp_path}"], dry_run=True, allow_code_change=flag)
    assert _Runner.made == [flag]
    (hint,) = hints
    assert hint.endswith(f"rlaif demo output_dir={tmp_path}" + (" --allow-code-change" if flag else ""))


def test_demo_help_lists_the_flag():
    from typer.testing import CliRunner

    from rlaif.cli import app

    result = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--allow-code-change" in result.output
