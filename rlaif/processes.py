"""Stopping child processes: one terminate-wait-kill sequence for the engine and the CLI's exit paths.

Why one place: vLLM's EngineCore/Worker processes and any other descendants must go on every exit
path (close, error, signal, atexit), and the order (SIGTERM, a grace period, then SIGKILL) is the same
everywhere. psutil is imported inside the function so importing this module costs nothing.

Guarantees: every process passed in that is still running (not a zombie) gets SIGTERM; any still alive
after ``timeout`` seconds gets SIGKILL. Processes that vanish meanwhile are ignored.
Non-guarantees: processes started after the list was taken are not seen.
"""

from __future__ import annotations


def terminate_then_kill(procs: list, timeout: float) -> None:
    """SIGTERM every running process in ``procs``, wait up to ``timeout`` s, SIGKILL the survivors."""
    import psutil

    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
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
