"""A sandbox worker's entry point: isolation set up once, the zygote started, then the pool's jobs.

The pool starts each worker as ``python -I -c BOOT`` with a scrubbed environment (so no secret is
even in its memory). :func:`worker_main` sets up the namespaces and the jail
(:mod:`rlaif.sandbox.jail`) and a memory cgroup bounding everything the worker runs
(:mod:`rlaif.sandbox.cgroup`), then execs the zygote (:mod:`rlaif.sandbox.zygote`) as the first
process of the new PID namespace and serves the pool's jobs itself (:mod:`rlaif.sandbox.runner`).
The zygote is a fresh interpreter (``execv``), so the sandboxed processes it forks never have
``ctypes`` in memory: only the worker, which never runs candidate code and is never forked from,
uses it (mounts, ``prctl``, IPC removal). What could not be set up is reported to the pool with the
worker's ``ready`` message, never papered over. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

from rlaif.sandbox.cgroup import setup_memory_cgroup
from rlaif.sandbox.frames import ZygoteGone, read_message, send_frame
from rlaif.sandbox.jail import clear_work_dir, fresh_work_dir, remove_ipc_objects, setup_isolation
from rlaif.sandbox.runner import serve_jobs
from rlaif.sandbox.syscalls import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, prctl
from rlaif.sandbox.userns import before_zygote_exec

ZYGOTE_BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p]; sys.path.insert(0, sys.argv.pop(1)); "
    "from rlaif.sandbox.zygote import zygote_main; sys.exit(zygote_main(sys.argv))"
)
# Every zygote (so every sandboxed process) gets the same string-hash seed: the iteration order of a
# set of strings is then the same in every worker, so a reference output computed in one worker
# compares equal to a correct candidate's output computed in another (e.g. ``tuple(set(...))``).
# The environment is entirely ours, so -s plus an explicit env replaces -I (which would ignore it).
ZYGOTE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}


def _isolate(cfg: dict) -> tuple[dict, list[str]]:
    """Namespaces, jail and memory cgroup for this worker; what is in place, and what is not."""
    iso, warnings = setup_isolation(cfg)
    iso["memory_cgroup"] = False
    if cfg.get("total_memory_mb") and iso["uid_drop"]:
        events, problem = setup_memory_cgroup(
            f"rlaif-sandbox-{cfg['uid']}", int(cfg["total_memory_mb"] * 2**20)
        )
        cfg["cgroup_events"] = events
        iso["memory_cgroup"] = events is not None
        if problem:
            warnings.append(problem)
    return iso, warnings


def _start_zygote(package_root: str, cfg: dict, iso: dict) -> tuple[socket.socket, int]:
    """Fork and exec the zygote (the first process of the new PID namespace, where there is one);
    returns our end of its socket and its pid. It dies with us (``PR_SET_PDEATHSIG``)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    state = json.dumps({**cfg, "isolation": iso})
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            os.set_inheritable(theirs.fileno(), True)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # survives execv; the zygote dies with us
            prctl(PR_SET_CHILD_SUBREAPER, 1)  # without a PID namespace, orphans come back to be reaped
            argv = [sys.executable, "-s", "-c", ZYGOTE_BOOT, package_root, state, str(theirs.fileno())]
            exe, argv = before_zygote_exec(cfg, iso, argv)  # pivot into the jail (no root), seccomp
            os.execve(exe, argv, ZYGOTE_ENV)
        except OSError as exc:
            os.write(2, f"sandbox worker: cannot start the zygote: {exc}\n".encode())
        finally:
            os._exit(70)
    theirs.close()
    return ours, pid


def worker_main(argv: list[str]) -> int:
    """Set up isolation, exec the zygote as the first process of the new PID namespace, then serve
    the pool's jobs (see :mod:`rlaif.sandbox.runner`)."""
    package_root, cfg = argv[1], json.loads(argv[2])
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a stray print can never corrupt the protocol
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)
    iso, warnings = _isolate(cfg)
    ours, pid = _start_zygote(package_root, cfg, iso)
    try:
        hello = read_message(ours, timeout=120.0)
    except ZygoteGone:
        return 70
    if hello[:1] != b"R":
        return 70
    ready = json.loads(hello[1:])
    iso["pid_namespace"] = ready["pid_namespace"]
    warnings += ready["warnings"]
    cgroup = os.path.dirname(cfg["cgroup_events"]) if cfg.get("cgroup_events") else None
    send_frame(proto_out, {"ready": True, "isolation": iso, "warnings": warnings, "cgroup": cgroup})

    def cleanup() -> None:
        clear_work_dir(cfg, iso)
        if iso["ipc"]:
            remove_ipc_objects()

    try:
        return serve_jobs(proto_in, proto_out, ours, cfg, iso, lambda: fresh_work_dir(cfg, iso), cleanup)
    finally:
        ours.close()
        os.waitpid(pid, 0)
        if cfg.get("_host_dir"):  # without the jail, the work dir's parent on the host's temp dir
            subprocess.run(["rm", "-rf", "--one-file-system", "--", os.path.dirname(cfg["_host_dir"])],
                           check=False, env={"PATH": "/usr/bin:/bin"})  # fmt: skip


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv))
