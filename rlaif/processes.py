"""Stopping child processes: one terminate-wait-kill sequence, and a watchdog for a SIGKILLed owner.

Why one place: vLLM's EngineCore/Worker processes and any other descendants must go on every exit
path (close, error, signal, atexit), and the order (SIGTERM, a grace period, then SIGKILL) is the same
everywhere. psutil is imported inside the functions so importing this module costs nothing.

Why a watchdog: a SIGKILLed process runs no handler, so the processes it started (vLLM spawns its
EngineCore, which forks workers) were left running, holding GBs of memory; one ignored SIGTERM.
``PR_SET_PDEATHSIG`` would need a hook inside every child that vLLM creates, which vLLM does not offer
(and it fires on the death of the parent *thread*). Instead :func:`start_watchdog` starts one small
process (``python -m rlaif.processes``) that records the owner's new descendants as they appear and,
when the owner exits for any reason, SIGKILLs those still running. It waits on a pidfd, so it sees
the death at once, and rescans the tree every :data:`SCAN_S` seconds while engines start (then every
:data:`SCAN_SLOW_S` seconds, a few milliseconds of CPU each).

Guarantees: every process passed to :func:`terminate_then_kill` that is still running (not a zombie)
gets SIGTERM (multiprocessing's resource tracker, which ignores SIGTERM, gets SIGKILL at once); any
still alive after ``timeout`` seconds gets SIGKILL. Processes that vanish meanwhile are ignored. A
watchdog kills, after its owner's death, every descendant of the owner that it saw (checked by start
time, so a recycled pid is never hit), and their descendants, except processes that existed before it
started, other watchdogs and multiprocessing's resource tracker (it must outlive us
to free shared memory). Non-guarantees: a child that started and double-forked away within one scan
interval is not seen; a SIGKILL of the watchdog itself disarms it.
"""

from __future__ import annotations

import os
import sys

SCAN_S = 0.5  # rescan interval while an engine starts (its processes appear then) ...
SCAN_SLOW_S = 5.0  # ... and after STARTUP_S seconds; the owner's death is seen at once either way
STARTUP_S = 120.0
_MARK = "rlaif.processes"


def terminate_then_kill(procs: list, timeout: float) -> None:
    """SIGTERM every running process in ``procs``, wait up to ``timeout`` s, SIGKILL the survivors."""
    import psutil

    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                if _ignores_sigterm(p):
                    p.kill()
                else:
                    p.terminate()
                alive.append(p)
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(alive, timeout=timeout)
    for p in still:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(still, timeout=timeout)


def _ignores_sigterm(proc) -> bool:
    """multiprocessing's resource tracker sets SIGTERM to SIG_IGN: terminating it only waits out the
    whole timeout before the SIGKILL it ends up with anyway (met when the CLI stops every descendant
    after Ctrl-C; engines no longer stop it, see ``vllm_processes.start_resource_tracker``)."""
    try:
        return "resource_tracker" in " ".join(proc.cmdline())
    except Exception:
        return False


def start_watchdog():
    """Start a watchdog on this process; returns its ``psutil.Popen`` (stop it with
    :func:`terminate_then_kill` once the processes it guards were stopped cleanly)."""
    import subprocess

    import psutil

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    before = ",".join(str(p.pid) for p in psutil.Process().children(recursive=True))
    return psutil.Popen(
        [sys.executable, "-m", _MARK, str(os.getpid()), before],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C is for the owner, not for the watchdog
    )


def _skip(proc, me: int) -> bool:
    try:
        line = " ".join(proc.cmdline())
    except Exception:
        return True
    return proc.pid == me or "resource_tracker" in line or f"-m {_MARK}" in line


def _scan(owner, seen: dict, ignore: set, me: int) -> None:
    import psutil

    try:
        for child in owner.children(recursive=True):
            if child.pid not in ignore and child.pid not in seen and not _skip(child, me):
                seen[child.pid] = child
    except psutil.Error:
        pass


def _kill_seen(seen: dict) -> None:
    import psutil

    victims = {}
    for proc in seen.values():
        try:
            if proc.is_running():  # psutil compares the start time: a recycled pid is not ours
                victims[proc.pid] = proc
                victims.update({c.pid: c for c in proc.children(recursive=True)})
        except psutil.Error:
            pass
    for proc in victims.values():
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(victims.values()), timeout=5)


def _watch(owner_pid: int, before: set[int]) -> None:
    import select
    import signal

    import psutil

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        owner = psutil.Process(owner_pid)
    except psutil.Error:
        return
    import time

    me, seen, start = os.getpid(), {}, time.monotonic()
    pidfd = os.pidfd_open(owner_pid) if hasattr(os, "pidfd_open") else None
    while True:
        _scan(owner, seen, before, me)
        wait = SCAN_S if time.monotonic() - start < STARTUP_S else SCAN_SLOW_S
        if pidfd is not None:
            if select.select([pidfd], [], [], wait)[0]:
                break
        else:  # pragma: no cover - kernels before 5.3
            time.sleep(SCAN_S)
        try:
            if owner.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.Error:
            break
    _kill_seen(seen)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), {int(p) for p in sys.argv[2].split(",") if p})
