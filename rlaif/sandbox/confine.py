"""The test process's confinement, applied in the freshly forked child before any candidate code.

Order matters: its own process group (what the sweep kills without a PID namespace), fds first (only
0-4 survive), then the jail (as root a ``chroot``; without root the
zygote is in the jail already) and the work dir, rlimits, the uid drop (as root; after which
nothing can be undone), and last the confinement channel (fd 4) is written and closed,
so the driver knows confinement succeeded and the candidate never sees that channel.
"""

from __future__ import annotations

import fcntl
import gc
import math
import os
import resource
import signal
import sys
import tempfile

CONFINED_OK = b"confined"
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


def confine(cfg, iso, limits, workdir, out_w, err_w, rep_w, conf_w) -> None:
    """T, before any candidate code: own process group, fds 0-3 only, jail, rlimits, unprivileged uid.

    A process group, not a session: the worker's session (``start_new_session``) has no controlling
    terminal already, and T, not a session leader, can never acquire one. ``setsid`` would also give
    T a scheduler autogroup of its own where the kernel has them on (``sched_autogroup_enabled``),
    which measured ~2/3 of the whole fork-and-confine time per sample."""
    os.setpgid(0, 0)
    devnull = os.open("/dev/null", os.O_RDWR)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (devnull, out_w, err_w, rep_w, conf_w)]
    for target, fd in enumerate(high):  # via high numbers, so no dup2 clobbers a source
        os.dup2(fd, target)
    os.closerange(5, 1 << 16)
    try:  # when the run's memory cgroup is full, the kernel kills the test processes, not the driver
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    if iso["filesystem"] and not iso.get("userns"):  # without root, the zygote is in the jail already
        os.chroot(cfg["jail_dir"])
    os.chdir(workdir)
    mem = int(limits["memory_mb"] * 1024 * 1024)
    cpu = int(math.ceil(limits["total_timeout"])) + 1
    # without root the worker and the zygote share T's uid in its user namespace, so count for it
    nproc = limits["max_processes"] + (2 if iso.get("userns") else 0)
    for res, value in (
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"])),
        (resource.RLIMIT_NOFILE, (limits["max_open_files"], limits["max_open_files"])),
        (resource.RLIMIT_NPROC, (nproc, nproc)),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(res, value)
    libc = None
    if not iso["filesystem"]:
        # Without the jail, setuid binaries are reachable and no PID namespace may tie T to the
        # driver: use prctl (ctypes is only ever loaded on this path; the jail masks it). Imported
        # while still root: the sandbox uid may not be allowed to read the Python installation.
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0)
    if iso["uid_drop"]:
        uid = iso["uid"]
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if libc is not None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"})
    tempfile.tempdir = None
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the zygote ignores it (see zygote_main)
    gc.enable()
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")
    sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")
    os.write(4, CONFINED_OK)
    os.close(4)  # the confinement channel is gone before candidate code can see it
