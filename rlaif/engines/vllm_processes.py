"""The vLLM engine's processes: started with Ctrl-C blocked, found, and stopped.

Why a module of its own: vLLM runs the model in other processes (EngineCore and workers). They must
not outlive the process that made the engine, must not see a terminal's Ctrl-C (it would kill them
mid-step, with a crash dump on stderr), and, when the owner is interrupted during a generate call,
must be stopped without asking the mid-step EngineCore to shut down (vLLM then cancels the step and
logs a "cancelled" traceback from every process).

Guarantees: processes recorded with :func:`track` are terminated, then killed after a timeout, by
:func:`stop` and at interpreter exit; a SIGKILLed owner cannot do that, so :func:`start_watchdog`
(see :mod:`rlaif.processes`) kills them once the owner is gone. Non-guarantees: processes that left
our process tree before the watchdog saw them are not found.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import signal
import threading

# Every engine process started in this interpreter, stopped at exit if its engine was never closed.
_LIVE: list = []


def descendants() -> dict:
    import psutil

    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:  # pragma: no cover
        return {}


def stop(procs: list, timeout: float = 5.0) -> None:
    """Terminate, wait, then kill: vLLM's own shutdown normally got there first (then this is a no-op)."""
    from rlaif.processes import terminate_then_kill

    terminate_then_kill(procs, timeout)
    for p in procs:
        if p in _LIVE:
            _LIVE.remove(p)


@contextlib.contextmanager
def ignoring_ctrl_c():
    """Start vLLM's processes with SIGINT blocked, so a terminal's Ctrl-C (sent to the whole process
    group) reaches only this process, which then shuts the engine down cleanly, instead of killing
    vLLM's workers mid-step (a crash dump on stderr). A signal mask survives fork and exec and Python
    does not unblock it. Meanwhile a helper thread takes a Ctrl-C meant for us and re-raises it in the
    main thread, so Ctrl-C still works while the engine starts."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    done = threading.Event()

    def forward() -> None:
        while not done.is_set():
            if signal.sigtimedwait({signal.SIGINT}, 0.2) is not None:
                _thread.interrupt_main(signal.SIGINT)

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    helper = threading.Thread(target=forward, name="rlaif-ctrl-c", daemon=True)  # inherits the mask
    helper.start()
    try:
        yield
    finally:
        done.set()
        helper.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@atexit.register
def _stop_all() -> None:
    stop(list(_LIVE))


def start_resource_tracker() -> None:
    """Start this process's multiprocessing resource tracker now, before an engine starts.

    Why: the engine's processes are found as the descendants that appear while it starts, and stopped
    with it. The tracker is a child too, started by the first shared-memory segment or semaphore this
    process makes, which is usually inside the first engine's start. Stopped with that engine, it
    took its records along: the next engine's segments were then unregistered from a fresh tracker
    that never knew them, which printed a ``KeyError`` traceback for each one when two engines (a
    policy and a judge) closed, and segments an engine's killed processes left in /dev/shm were never
    removed. Kept running, the tracker removes them when this process exits; it is started without
    its "leaked shared_memory objects to clean up" warning, which would otherwise end every run."""
    import sys
    from multiprocessing import resource_tracker

    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"  # read when the tracker is spawned
    sys.warnoptions.append(quiet)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(quiet)


def shared_memory_of(procs: list) -> set[str]:
    """The /dev/shm files these processes map; read before they are stopped."""
    import psutil

    paths: set[str] = set()
    for proc in procs:
        try:
            paths.update(m.path for m in proc.memory_maps() if m.path.startswith("/dev/shm/"))
        except psutil.Error:
            pass
    return paths


def remove_left_segments(paths: set[str]) -> None:
    """Unlink the shared-memory files a stopped engine's processes mapped and left behind.

    Why: vLLM's processes create some segments without telling the resource tracker, and a process
    that is killed cannot unlink them: each closed engine left a file of 160 MiB (sparse) in /dev/shm
    for good. Files this process maps itself are left to their owner here (it unlinks them when
    closed, and would fail if the name were gone)."""
    import os

    import psutil

    for path in sorted(paths - shared_memory_of([psutil.Process()])):
        try:
            os.unlink(path)
        except OSError:  # already removed by its creator: the normal case
            pass


def track(procs: list) -> None:
    """Stop these processes at interpreter exit unless :func:`stop` got to them first."""
    _LIVE.extend(procs)


def start_watchdog():
    """A process that SIGKILLs the engine processes started after it if this process dies first."""
    from rlaif.processes import start_watchdog as start

    return start()


def kill_engine_cores(procs: list, timeout: float = 5.0) -> None:
    """SIGKILL the EngineCore processes among ``procs`` and wait for them.

    Why: an EngineCore interrupted mid-step logs a "cancelled" traceback whenever its step ends by
    shutdown (its own, or its worker's death). Killed outright it cannot; its workers are then
    stopped by :func:`stop` as usual."""
    import psutil

    cores = []
    for proc in procs:
        try:
            if proc.name().startswith("VLLM::EngineCore"):
                proc.kill()
                cores.append(proc)
        except psutil.Error:
            pass
    psutil.wait_procs(cores, timeout=timeout)
