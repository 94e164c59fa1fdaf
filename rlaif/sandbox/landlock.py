"""A Landlock domain for the sandbox without root: test processes may write only in their work dir.

Why it is needed there: in a user namespace the sandboxed code runs as the uid that owns the jail's
work tmpfs, so file permissions cannot keep it out of ``/tmp`` (it could ``chmod`` them back) and a
file left beside the work dir would reach the next sample. Landlock (Linux 5.13+) restricts by path,
whatever the permissions: the domain created here, in the zygote's process just before it execs
(so the zygote and every test process inherit it; it can be narrowed, never lifted), allows every
write-like access only beneath the work dir and writing to the jail's ``/dev`` (``/dev/null``);
reading and executing are left to the read-only, noexec mounts. From ABI 4 on, TCP ``bind`` and
``connect`` are refused as well (on top of the empty network namespace).

Our own few lines over the three system calls (``ctypes``; the PyPI binding is a pre-release).
Not guaranteed: kernels without Landlock (or with it disabled) get no domain -- :func:`abi` returns 0,
the isolation dict shows ``landlock: False``, and the worker then empties the whole work tmpfs
after every run, so a file left outside the work dir still reaches no later sample. As root the
jail's ``/tmp`` belongs to root and the code to another uid, so no domain is needed there.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

_NR = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}
CREATE_RULESET_VERSION, RULE_PATH_BENEATH = 1, 1
WRITE_FILE, REMOVE_DIR, REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
MAKE_ALL = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
REFER, TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi() -> int:
    """The kernel's Landlock ABI version (0: no Landlock)."""
    numbers = _NR.get(platform.machine())
    if numbers is None:
        return 0
    version = _libc().syscall(ctypes.c_long(numbers[0]), None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(0, version)


def _write_rights(version: int) -> int:
    return (
        WRITE_FILE
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_ALL
        | (REFER if version >= 2 else 0)
        | (TRUNCATE if version >= 3 else 0)
    )


def restrict(work_dir: str, dev_dir: str = "/dev") -> None:
    """Create and enter the domain (sets ``no_new_privs``, which it needs). Raises ``OSError``."""
    version = abi()
    if version < 1:
        raise OSError(38, "Landlock is not available")
    create, add_rule, restrict_self = _NR[platform.machine()]
    libc, rights = _libc(), _write_rights(version)
    attr = (
        struct.pack("QQ", rights, NET_BIND_TCP | NET_CONNECT_TCP)
        if version >= 4
        else struct.pack("Q", rights)
    )
    ruleset = libc.syscall(ctypes.c_long(create), attr, ctypes.c_size_t(len(attr)), 0)
    _check(ruleset, "landlock_create_ruleset")
    try:
        for path, allowed in ((work_dir, rights), (dev_dir, WRITE_FILE | (rights & TRUNCATE))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = struct.pack("=Qi", allowed, fd)
                _check(
                    libc.syscall(ctypes.c_long(add_rule), ruleset, RULE_PATH_BENEATH, rule, 0),
                    f"landlock rule {path}",
                )
            finally:
                os.close(fd)
        _check(libc.prctl(38, ctypes.c_ulong(1), 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(libc.syscall(ctypes.c_long(restrict_self), ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _check(ret: int, what: str) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
