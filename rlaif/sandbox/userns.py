"""The sandbox without root: a user namespace of its own per worker, and the zygote moved into the
jail with ``pivot_root`` (standard library only; system calls through :mod:`rlaif.sandbox.syscalls`).

How it fits together (the worker calls :func:`enter_user_namespace` first, the zygote's process calls
:func:`enter_jail` just before it execs):

- the worker, not root, unshares a user namespace that maps only its own uid and gid (to the same
  numbers: no other id exists in it, ``setgroups`` is denied). In it the worker holds every
  capability *over its own namespaces*, so it builds the same network, IPC/UTS, mount (the jail) and
  PID namespaces as root does (:func:`rlaif.sandbox.jail.setup_isolation`);
- the zygote's process takes a copy of the worker's mount namespace, makes the jail its root with
  ``pivot_root`` and detaches the old root: the host's filesystem is then not even in its mount
  table (root's ``chroot`` leaves it there, under the jail). The interpreter, its ``libpython`` and
  the ``rlaif`` package are bound read-only into the jail for that (:func:`jail_extras`);
- ``execve`` as a non-zero uid clears every capability, so the zygote and each test process hold
  none -- not even over their own namespaces -- and with ``no_new_privs`` nothing regains one;
  the seccomp filter (:mod:`rlaif.sandbox.seccomp`, installed after this) forbids ``chroot``,
  mounts and new namespaces on top, and a Landlock domain (:mod:`rlaif.sandbox.landlock`) lets
  them write only in the work dir, although they own the jail's ``/tmp``.

Not guaranteed: all workers and test processes run as your own uid (seen from outside), so
``kill``/``ptrace`` protection between them and your other processes comes from the PID namespace
and the seccomp filter, not from a uid of their own; there is no memory cgroup (unless one is
delegated), so one run's memory is bounded by ``max_processes x memory_mb`` only (the sandboxed
processes are the global OOM killer's first choice, the zygote included).
"""

from __future__ import annotations

import os
import sys
import sysconfig

from rlaif.sandbox import landlock, seccomp
from rlaif.sandbox.syscalls import CLONE_NEWNS, CLONE_NEWUSER, pivot_root, umount_detached, unshare

PACKAGE_MOUNT = "/.rlaif"  # where the rlaif package appears in the jail (as PACKAGE_MOUNT/rlaif)


def enter_user_namespace() -> None:
    """Unshare a user namespace mapping only our own uid and gid (to the same numbers)."""
    uid, gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)


def package_dir() -> str:
    """This ``rlaif`` package's directory (bound read-only into the jail for the zygote)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def interpreter_files() -> list[str]:
    """The interpreter binary and, for a shared build, its ``libpython``: the zygote runs them in
    the jail (the standard library is bound there already)."""
    files = [os.path.realpath(sys.executable)]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
        for candidate in (name, sysconfig.get_config_var("LDLIBRARY")):
            path = os.path.join(libdir or "", candidate or "")
            if candidate and os.path.isfile(path):
                files.append(path)
    return files


def jail_extras() -> tuple[list[str], dict[str, str]]:
    """(files to bind executable at their own path, {jail path: host directory} to bind noexec)."""
    return interpreter_files(), {f"{PACKAGE_MOUNT}/rlaif": package_dir()}


def enter_jail(jail: str) -> None:
    """Make ``jail`` this process's root in a mount namespace of its own; the old root is detached.

    ``pivot_root(".", ".")`` stacks the old root on top of the new one; detaching it leaves only the
    jail (no directory for the old root is needed, and none remains)."""
    unshare(CLONE_NEWNS)
    os.chdir(jail)
    pivot_root(".", ".")
    umount_detached(".")
    os.chdir("/")


def before_zygote_exec(cfg: dict, iso: dict, argv: list[str]) -> tuple[str, list[str]]:
    """In the zygote's process, just before it execs: move into the jail (user-namespace mode) and
    install the seccomp filter. Returns the executable and argv to exec. Raises ``OSError`` when a
    step fails: the caller must then exit, never exec the zygote half-confined."""
    exe = argv[0]
    if iso.get("userns"):
        _first_to_go()
    if iso.get("userns") and iso.get("filesystem"):
        exe, argv = _jailed_command(argv)  # host paths resolved before they disappear
        enter_jail(cfg["jail_dir"])
        if iso.get("landlock"):
            landlock.restrict("/tmp/run")
    if iso.get("seccomp"):
        seccomp.install(chroot=not iso.get("userns"))
    return exe, argv


def _first_to_go() -> None:
    """Without a memory cgroup, the kernel's global OOM killer is the last bound on a run's memory:
    make the zygote and so every test process its first choice (raising one's own score needs no
    privilege; as root each test process does it in :mod:`rlaif.sandbox.confine`). Best effort: a
    kernel without ``/proc`` leaves the score as it was, which changes nothing else."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass


def _jailed_command(argv: list[str]) -> tuple[str, list[str]]:
    """``argv`` (``[python, ..., package_root, ...]`` as the worker builds it) as seen in the jail."""
    exe = os.path.realpath(argv[0])
    root = os.path.dirname(package_dir())
    return exe, [exe] + [PACKAGE_MOUNT if a == root else a for a in argv[1:]]
