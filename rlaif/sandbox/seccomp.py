"""A seccomp filter for every sandboxed process: the kernel interfaces candidate code never needs.

Installed by the worker in the zygote's process just before it execs (:func:`install`), so the
zygote and every test process it forks -- and every program they exec (perl, gcc, a shell) --
inherit it; a filter can be added to but never removed. Our own few lines of classic BPF (through
``prctl``), no third-party binding: the PyPI ones wrap ``libseccomp`` through ``ctypes`` as well and
need that library installed; here the worker already makes its other system calls through ``ctypes``.

Why a deny-list, not an allow-list: the jail offers real tools (perl, gcc, a shell) and any Python
version, whose system calls differ by version and libc; an allow-list would break them in ways we
cannot test. The classes below are closed outright, each for a reason:

- kernel keyrings (``add_key``, ``keyctl``, ``request_key``): a channel between samples that even
  outlives the pool (keys belong to the user, not to a process);
- SysV IPC (``shm*``, ``sem*``, ``msg*``): shared memory outlives its processes, so one sample could
  fill the run's memory cgroup and make later test processes die before they report; POSIX message
  queues (``mq_*``) outlive them as well, in the worker's IPC namespace: a channel to later samples;
- ``io_uring``: a second system-call interface that seccomp cannot see into, and a large share of
  recent kernel exploits;
- ``ptrace``, ``process_vm_readv/writev``, ``pidfd_getfd``, ``kcmp``: reading or steering other
  processes (the harness of the same run included);
- new namespaces (``unshare``, ``setns``, ``clone`` with a ``CLONE_NEW*`` flag; ``clone3`` answers
  ENOSYS, so libc falls back to ``clone``, whose flags we can see) and every mount call: unprivileged
  user namespaces are the usual door to kernel bugs, and there is nothing to mount;
- ``bpf``, ``perf_event_open``, ``userfaultfd`` (exploit helpers), module loading, ``kexec``,
  handle-based opens (``open_by_handle_at`` can walk out of a chroot), ``acct``, ``swapon``,
  ``reboot``, ``syslog``, ``quotactl``, ``iopl``/``ioperm``;
- signals to pid 1 (``kill``, ``tgkill``, ``rt_sigqueueinfo``, ``pidfd_open`` ...): where the worker
  has a PID namespace, pid 1 is the zygote; as root it runs under another uid anyway, but without
  root it shares the code's uid;
- ``chroot`` where the process runs in a user namespace of its own (:func:`install` ``chroot=False``);
  as root the test process needs it once, before it drops to its sandbox uid;
- any other ABI than the native one (x32 system-call numbers, 32-bit ``int 0x80``), which would
  otherwise bypass a deny-list by number.

A denied call fails with EPERM (ENOSYS for ``clone3``), as on a kernel without the feature, so
programs see an ordinary error; a foreign ABI kills the process. Guarantees: the filter is in place
before any candidate code runs and cannot be lifted. Not guaranteed: other kernel interfaces not on
the list (a deny-list is only as good as its list); architectures other than x86_64 get no filter
(:func:`unavailable` says so and the pool's isolation dict shows ``seccomp: False``).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS, RET_ALLOW, RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
# x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl), grouped as in the module docstring.
DENIED_X86_64 = {
    "add_key": 248, "request_key": 249, "keyctl": 250,
    "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65, "semctl": 66,
    "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
    "mq_getsetattr": 245,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "pidfd_getfd": 438,
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169,
    "syslog": 103, "quotactl": 179, "iopl": 172, "ioperm": 173, "lookup_dcookie": 212,
}  # fmt: skip
CHROOT_X86_64, CLONE_X86_64, CLONE3_X86_64 = 161, 56, 435
# kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_open: refused for pid 1, the zygote
SIGNAL_X86_64 = (62, 200, 234, 129, 297, 434)


def unavailable() -> str | None:
    """Why no filter can be installed here (None: it can)."""
    if platform.machine() != "x86_64":
        return f"no seccomp filter: no system-call table for {platform.machine()} (only x86_64)"
    try:
        with open("/proc/self/status") as fh:
            if not any(line.startswith("Seccomp:") for line in fh):
                return "no seccomp filter: the kernel has no seccomp support"
    except OSError as exc:
        return f"no seccomp filter: cannot read /proc/self/status ({exc})"
    return None


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program(chroot: bool = True) -> bytes:
    """The filter as raw ``sock_filter`` instructions (x86_64)."""
    deny = sorted(DENIED_X86_64.values()) + ([] if chroot else [CHROOT_X86_64])
    eperm, enosys = RET_ERRNO | EPERM, RET_ERRNO | ENOSYS
    out = [
        _insn(LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _insn(RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _insn(JGE_K, 0, 1, X32_SYSCALL_BIT),
        _insn(RET_K, 0, 0, eperm),
        _insn(JEQ_K, 0, 1, CLONE3_X86_64),
        _insn(RET_K, 0, 0, enosys),
    ]
    for nr in deny:
        out += [_insn(JEQ_K, 0, 1, nr), _insn(RET_K, 0, 0, eperm)]
    for nr in SIGNAL_X86_64:
        out += [
            _insn(JEQ_K, 0, 4, nr),
            _insn(LD_W_ABS, 0, 0, 16),  # low half of args[0]: the target pid
            _insn(JEQ_K, 0, 1, 1),
            _insn(RET_K, 0, 0, eperm),
            _insn(RET_K, 0, 0, RET_ALLOW),
        ]
    out += [
        _insn(JEQ_K, 0, 4, CLONE_X86_64),
        _insn(LD_W_ABS, 0, 0, 16),  # low half of args[0]: clone's flags
        _insn(JSET_K, 0, 1, CLONE_NEW_FLAGS),
        _insn(RET_K, 0, 0, eperm),
        _insn(RET_K, 0, 0, RET_ALLOW),
        _insn(RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(out)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(chroot: bool = True) -> None:
    """Set ``no_new_privs`` and install the filter in this process (inherited by all it starts).

    Raises ``OSError`` where the kernel refuses; the caller must then not run candidate code.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    code = program(chroot)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    for args, what in (
        ((PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)"),
        ((PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0), "seccomp filter"),
    ):
        if libc.prctl(*(ctypes.c_ulong(a) for a in args)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
