"""The real-model ``slow`` tests run 30 min to 2 h; the suite's per-test timeout (900 s) must not apply
to them (it killed the Self-Rewarding run 15 min in), while the default tests keep it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = """
def pytest_collection_finish(session):
    for item in session.items:
        mark = item.get_closest_marker("timeout")
        print("TIMEOUT", item.name, mark.args[0] if mark else "suite")
"""


def _timeouts(tmp_path: Path, *args: str) -> dict[str, str]:
    (tmp_path / "timeout_report.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-s", "-p", "no:cacheprovider"]
    out = subprocess.run(
        [*cmd, "-p", "timeout_report", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return dict(line.split()[1:] for line in out.stdout.splitlines() if line.startswith("TIMEOUT "))


def test_slow_tests_get_hours_and_the_default_tests_keep_the_suite_timeout(tmp_path):
    path = "tests/pipeline/test_self_rewarding_smollm2.py"
    slow = _timeouts(tmp_path, "-m", "slow", path)
    assert slow and all(int(v) >= 4 * 3600 for v in slow.values()), slow
    default = _timeouts(tmp_path, path)
    assert default and set(default.values()) == {"suite"}, default
