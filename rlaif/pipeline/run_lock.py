"""One run per run folder: an exclusive lock on ``<run_dir>/run.lock`` held for the run's whole life.

Why: two ``rlaif run`` into one folder both exited 0 while overwriting each other's pairs, models and
event log. The second now stops before touching anything, naming the first one's pid.

How: a POSIX record lock (``fcntl.lockf``) on the lock file. The kernel drops it when the holder exits
in any way (SIGKILL and crashes included), so a lock is never left behind; POSIX locks belong to the
process, so vLLM's forked workers do not inherit it and cannot keep it alive. The holder's pid is
written into the file and the file is emptied on a clean release: a non-empty file whose lock is free
therefore means the last run was killed, which :func:`hold` reports and :func:`run_was_killed` tells
the status reader. A process never takes a lock on a folder it already holds (POSIX locks do not
conflict within one process, so that is checked here).

Guarantees: while :func:`hold` is active no other process (on this machine or another one that shares
the file system with working POSIX locks, e.g. NFSv4) gets the lock. Non-guarantees: file systems
without POSIX locks (some FUSE mounts) lock nothing; a reader of the lock file in the holding process
must not open it (closing any descriptor of the file drops a POSIX lock) — :func:`holder` avoids that.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from rlaif.errors import RlaifError

LOCK_FILE = "run.lock"
_HELD: dict[Path, int] = {}  # run folders this process holds -> the lock file's descriptor


class RunFolderBusy(RlaifError):
    """Another live process holds the run folder."""


def _key(run_dir: Path) -> Path:
    return Path(run_dir).resolve()


def _recorded_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text.split()[0]) if text and text.split()[0].isdigit() else None


@contextlib.contextmanager
def hold(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the body; :class:`RunFolderBusy` if another process has it."""
    key = _key(run_dir)
    if key in _HELD:
        raise RunFolderBusy(f"{run_dir}: this process is already running into this run folder")
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = _recorded_pid(fd)
        os.close(fd)
        who = f"pid {pid}" if pid else "another process"
        raise RunFolderBusy(
            f"{run_dir}: another rlaif run is using this run folder ({who}); wait for it to finish or "
            f"stop it, or run into another folder"
        ) from None
    stale = _recorded_pid(fd)
    if stale is not None and stale != os.getpid():
        print(f"note: the previous run in {run_dir} (pid {stale}) was killed; resuming", file=sys.stderr)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = fd
    try:
        yield
    finally:
        del _HELD[key]
        os.ftruncate(fd, 0)  # a clean release leaves an empty file
        os.close(fd)  # drops the lock


def holder(run_dir: Path) -> int | None:
    """The pid of the live process holding the run folder, or None when nobody holds it."""
    key = _key(run_dir)
    if key in _HELD:
        return os.getpid()
    try:
        fd = os.open(key / LOCK_FILE, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _recorded_pid(fd) or -1
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def run_was_killed(run_dir: Path) -> bool:
    """True when the last run in the folder ended without releasing its lock (SIGKILL, crash, power)."""
    if holder(run_dir) is not None:
        return False
    try:
        return bool((Path(run_dir) / LOCK_FILE).read_text(encoding="ascii").strip())
    except OSError:
        return False
