"""Ctrl-C and ``kill``: exit 130 (SIGINT) or 143 (SIGTERM), say what was kept, leave no process behind.

Why our own handlers: typer turns KeyboardInterrupt into exit status 0 when the CLI is not in
standalone mode, vLLM's engine processes outlive a SIGTERM'd parent (holding GBs of memory, or the
GPU), and a KeyboardInterrupt raised inside a library can be swallowed. The handlers raise
:class:`Interrupted`, a ``BaseException`` that no ``except Exception`` catches, so ``finally`` blocks
run (engines close, stage manifests stay unwritten) and :func:`rlaif.cli.main` prints the command's
resume hint; an exception a library raises while being interrupted is reported the same way. A
second signal, or a shutdown stuck for :data:`GRACE_S` seconds, kills every child
process and exits at once.

Guarantees: on a normal exit, an error, SIGINT or SIGTERM, every descendant process of the CLI
(vLLM's EngineCore and workers, sandbox workers) is terminated, then killed if still alive after
:data:`TERM_WAIT_S` seconds; multiprocessing's resource tracker is left to clean up shared memory
after we exit. Non-guarantees: SIGKILL cannot be handled (stages resume from their finished chunks
anyway); processes that left our process tree (double-forked daemons) are not found.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

GRACE_S = 30.0
TERM_WAIT_S = 5.0
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

_hint: str | None = None
_received: list[int] = []


class Interrupted(BaseException):
    """Raised in the main thread by our SIGINT/SIGTERM handler."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 128 + self.signum)


def set_resume_hint(text: str) -> None:
    """What was kept and how to resume, printed after ``interrupted (SIGINT):``."""
    global _hint
    _hint = text


def received_signal() -> int | None:
    """The first SIGINT/SIGTERM our handler received in this process, if any."""
    return _received[0] if _received else None


def message(signum: int) -> str:
    name = signal.Signals(signum).name
    return f"interrupted ({name}): {_hint or 'nothing was kept; run the same command again'}"


def _handler(signum: int, frame) -> None:
    _received.append(signum)
    if len(_received) > 1:  # second Ctrl-C: stop waiting for a clean shutdown
        _force_exit(signum)
    timer = threading.Timer(GRACE_S, _force_exit, args=(signum,))
    timer.daemon = True
    timer.start()
    raise Interrupted(signum)


def _force_exit(signum: int) -> None:
    kill_children()
    try:
        sys.stderr.write(message(signum) + "\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_CODES.get(signum, 128 + signum))


def install() -> None:
    """Install the handlers (main thread of the CLI process only)."""
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def _is_resource_tracker(proc) -> bool:
    try:
        return "resource_tracker" in " ".join(proc.cmdline())
    except Exception:
        return False


def kill_children(timeout: float = TERM_WAIT_S) -> int:
    """Terminate, then kill, every descendant of this process; returns how many were alive."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with vllm; fall back to nothing
        return 0
    try:
        procs = [p for p in psutil.Process().children(recursive=True) if not _is_resource_tracker(p)]
    except psutil.Error:
        return 0
    from rlaif.processes import terminate_then_kill

    terminate_then_kill(procs, timeout)
    return len(procs)
