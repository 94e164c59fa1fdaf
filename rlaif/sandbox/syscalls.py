"""The few Linux system calls the worker makes through ``ctypes``: unshare, mount, umount,
pivot_root, prctl, and removing SysV IPC objects (standard library only).

Only the worker process imports this module (and the pool, to compute paths, never to call it):
the worker never runs candidate code and is never forked from, and the zygote that forks the test
processes is a fresh interpreter, so no sandboxed process ever has ``ctypes`` in memory (the jail
masks it as well). Every failing call raises ``OSError`` with the call, its target and errno's text.
"""

from __future__ import annotations

import ctypes
import os
import platform

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x20000000, 0x40000000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH, IPC_RMID = 2, 0
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36

_libc = ctypes.CDLL(None, use_errno=True)
_IPC_CALLS = {
    "shm": ("shmctl", (IPC_RMID, None)),
    "sem": ("semctl", (0, IPC_RMID)),
    "msg": ("msgctl", (IPC_RMID, None)),
}


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(flags)
    else:
        _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def b(s):
        return s.encode() if s is not None else None

    _check(_libc.mount(b(source), b(target), b(fstype), ctypes.c_ulong(flags), b(data)), f"mount {target}")


def umount_detached(target: str) -> None:
    """Detach a mount at once (the kernel frees it when the last user is gone)."""
    _check(_libc.umount2(target.encode(), ctypes.c_int(MNT_DETACH)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    number = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
    if number is None:
        raise OSError(38, f"pivot_root: no system-call number known for {platform.machine()}")
    _check(
        _libc.syscall(ctypes.c_long(number), new_root.encode(), put_old.encode()), f"pivot_root {new_root}"
    )


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def remove_ipc_object(kind: str, ident: int) -> bool:
    """Remove one SysV IPC object (``kind``: shm, sem or msg); True when it was removed."""
    call, args = _IPC_CALLS[kind]
    return getattr(_libc, call)(ctypes.c_int(ident), *args) == 0
