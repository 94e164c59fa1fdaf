"""Run ``rlaif`` as a real subprocess and watch its whole process tree (for the CLI tests).

Every descendant seen while the command runs (vLLM's EngineCore and workers are spawned late) is
remembered, so a test can assert that none of them outlives the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


class CliProcess:
    def __init__(self, args: list[str], workdir: Path, name: str, env: dict | None = None):
        self.out = workdir / f"{name}.stdout"
        self.err = workdir / f"{name}.stderr"
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rlaif.cli", *args],
                stdout=out,
                stderr=err,
                env=full_env,
                cwd=workdir,
                start_new_session=True,  # its own process group, like a shell job
            )
        self.seen: dict[int, psutil.Process] = {}

    def _watch(self) -> None:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def seen_names(self) -> set[str]:
        names = set()
        for p in self.seen.values():
            try:
                names.add(p.name())
            except psutil.Error:
                pass
        return names

    def wait_until(self, condition, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self._watch()
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode} early:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting:\n{self.stderr()[-3000:]}")
            time.sleep(0.2)
        self._watch()

    def send(self, sig: int, group: bool = False) -> None:
        """``group``: the whole process group, as Ctrl-C in a terminal does; else the CLI only (kill)."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def finish(self, timeout: float = 600) -> int:
        while self.proc.poll() is None and timeout > 0:
            self._watch()
            time.sleep(0.2)
            timeout -= 0.2
        return self.proc.wait(timeout=max(timeout, 1))

    def survivors(self, grace: float = 10.0) -> list[str]:
        """Descendants still running ``grace`` seconds after the command exited."""
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=grace)
        out = []
        for p in alive:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{p.pid} {p.name()}")
            except psutil.Error:
                pass
        return out

    def cleanup(self) -> None:
        for p in self.seen.values():
            try:
                p.kill()
            except psutil.Error:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()
