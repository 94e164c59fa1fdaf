"""rlaif.engines.reaper: a command's process tree dies with the reaper's parent, and with the reaper
itself when something SIGKILLs it (as Ray does to a dying actor's direct children)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

PARENT = """
import os, subprocess, sys
env = {**os.environ, "RLAIF_REAPER_PARENT": str(os.getpid())}
p = subprocess.Popen([sys.executable, "-m", "rlaif.engines.reaper", "sleep", "300"], start_new_session=True, env=env)
print(p.pid, flush=True)
p.wait()
"""


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _start():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    group = int(parent.stdout.readline())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the reaper, its sentinel and the command
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(group)], capture_output=True, text=True).stdout
        if len(out.split()) >= 3:
            break
        time.sleep(0.1)
    return parent, group


def _gone(group: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["ps", "-o", "stat=", "-g", str(group)], capture_output=True, text=True).stdout
        if all(s.startswith("Z") for s in out.split()):  # zombies wait for their parent, nothing runs
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("victim", ["parent", "reaper"])
def test_the_command_dies_with_the_parent_or_the_reaper(victim):
    parent, group = _start()
    try:
        assert _alive(group)
        os.kill(parent.pid if victim == "parent" else group, signal.SIGKILL)
        assert _gone(group)
    finally:
        parent.kill()
        parent.wait()
        if _alive(group):
            os.killpg(group, signal.SIGKILL)
