"""Run ``rlaif`` as a real subprocess (for the CLI tests that signal, kill or watch a command).

- :class:`CliProcess`: a running command whose whole process tree is watched: every descendant seen
  while it runs (vLLM's EngineCore and workers are spawned late) is remembered, so a test can assert
  that none of them outlives the command; as a context manager it kills what is left on exit;
- :func:`interruptible_run`: a run config long enough to signal or kill mid-feedback.
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


def cli_env(*paths: Path | str) -> dict[str, str]:
    """This checkout (then ``paths``, for test plug-ins) on ``PYTHONPATH``; one OpenMP thread."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), *map(str, paths)]),
        "OMP_NUM_THREADS": "1",
    }


def interruptible_run(run_config, model: Path, shared: Path, name: str, **changes) -> Path:
    """A one-round self-rewarding run on 40 MT-Bench prompts in 20 chunks of 2 (seed 3): long enough
    to be signalled or killed mid-feedback, with its engine processes up. ``changes`` add or replace
    whole top-level sections."""
    sections = {
        "prompts": {"kind": "mtbench", "path": str(shared / "mt-bench" / "question.jsonl"), "limit": 40},
        "feedback": {
            "source": "self_rewarding",
            "chunk_size": 2,
            "options": {"num_generations": 2, "sampling": {"max_tokens": 16}},
        },
        "dpo": {"lora": {"r": 4, "alpha": 8}},
    }
    return run_config.write(run_config.tiny(model, name=name, seed=3, **{**sections, **changes}))


class CliProcess:
    def __init__(self, args: list[str], workdir: Path, name: str, env: dict | None = None):
        self.out = workdir / f"{name}.stdout"
        self.err = workdir / f"{name}.stderr"
        full_env = {**cli_env(), **(env or {})}
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

    def __enter__(self) -> CliProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

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
