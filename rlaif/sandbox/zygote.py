"""The clean parent of every test process: forks them, and kills and reaps all they leave behind.

Why a separate process: a forked child inherits its parent's memory, freed parts included. The worker
(:mod:`rlaif.sandbox.runner`) receives jobs, reads the test processes' reports and builds results, so
its heap holds programs, outputs and reference values of earlier runs. Were the test processes forked
from it, a later sample able to read raw memory could read an earlier one's data. The zygote is a fresh
interpreter (``execv``; ``ctypes`` never loaded) that imports the common modules and then never sees
any job data at all: the worker hands it only pipe ends (``SCM_RIGHTS``), the test process reads its
job from a pipe itself, after the fork. So every test process starts from the same clean image.

Where the kernel allows, the zygote is PID 1 of the worker's PID namespace: after each attempt
``kill(-1)`` reaches every process the candidate started, and the zygote reaps them all (in a
``finally``: whatever happened, nothing outlives the attempt). Without a PID namespace it kills the
test process's group and every process of the sandbox uid instead, and reaps orphans as subreaper.

Protocol on the (SOCK_SEQPACKET) socket to the worker: worker ``F`` + 5 fds (job pipe read end,
stdout, stderr, report and confinement write ends) -> the zygote forks T; when T exits, or the worker
sends ``K`` (time is up, or a protocol violation), the zygote kills and reaps everything and answers
``S`` + T's wait status. One message each way per attempt, so the handoff costs little.
Standard library only.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys
import time

from rlaif.sandbox import harness
from rlaif.sandbox.confine import confine

PRELOAD = (
    "array bisect cmath collections copy datetime decimal fractions functools hashlib heapq itertools "
    "json math operator random re statistics string sys textwrap typing unicodedata"
).split()


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _test_process(cfg: dict, iso: dict, fds: list[int]) -> None:
    """T: read the job from its pipe, confine itself, run the harness; never returns."""
    job_r, out_w, err_w, rep_w, conf_w = fds
    try:
        request = json.loads(_read_all(job_r))
        os.close(job_r)
        confine(cfg, iso, request["job"]["limits"], request["workdir"], out_w, err_w, rep_w, conf_w)
    except BaseException as exc:
        for fd in (4, conf_w):  # wherever the confinement channel is at this point
            try:
                os.write(fd, f"error: {exc!r}".encode())
                break
            except OSError:
                pass
        os._exit(71)
    try:
        harness.run_in_child(request["job"], request["start"], 3, request["nonce"])
    finally:
        os._exit(71)


def _sweep(iso: dict, pid: int) -> int | None:
    """Kill everything the attempt started and reap it; returns the test process's wait status."""
    status = None
    if iso["pid_namespace"]:
        try:
            os.kill(-1, signal.SIGKILL)  # PID 1 of our own namespace: reaches every other member
        except ProcessLookupError:
            pass
        while True:
            try:
                done, st = os.waitpid(-1, 0)
            except ChildProcessError:
                return status
            if done == pid:
                status = st
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, status = os.waitpid(pid, 0)
    if iso["uid_drop"]:
        killer = os.fork()
        if killer == 0:
            try:
                os.setresuid(iso["uid"], iso["uid"], iso["uid"])
                for _ in range(3):  # as that uid, kill(-1) reaches only that uid's processes
                    os.kill(-1, signal.SIGKILL)
                    time.sleep(0.001)
            except (ProcessLookupError, PermissionError):
                pass
            os._exit(0)
        os.waitpid(killer, 0)
    deadline = time.monotonic() + 1.0  # orphans come to us as subreaper: reap the ones just killed
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if done == 0:
            time.sleep(0.001)
    return status


def serve(sock: socket.socket, cfg: dict, iso: dict) -> int:
    """Fork one test process per ``F`` request until the worker closes the socket."""
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 64, 8)
        if msg == b"K" and not fds:
            continue  # a stop request that crossed our report of an attempt already over
        if msg != b"F" or len(fds) != 5:
            for fd in fds:
                os.close(fd)
            return 0 if not msg else 3
        pid = os.fork()
        if pid == 0:
            sock.close()
            _test_process(cfg, iso, fds)
        for fd in fds:
            os.close(fd)
        status = None
        try:
            pidfd = os.pidfd_open(pid)
            try:  # until T exits or the worker says the attempt is over (or is gone)
                with selectors.DefaultSelector() as sel:
                    sel.register(sock, selectors.EVENT_READ)
                    sel.register(pidfd, selectors.EVENT_READ)
                    done = False
                    while not done:
                        for key, _ in sel.select():
                            if key.fd == pidfd or sock.recv(64) in (b"K", b""):
                                done = True
            finally:
                os.close(pidfd)
        finally:
            status = _sweep(iso, pid)
        sock.send(b"S" + json.dumps(status).encode())


def zygote_main(argv: list[str]) -> int:
    """Entry point (exec'd by :func:`rlaif.sandbox.worker.worker_main`): preload, report, serve."""
    state = json.loads(argv[1])
    # PID 1 of a namespace gets only the signals it handles: no handler, so none from the sandbox
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sock = socket.socket(fileno=int(argv[2]))
    iso, warnings = state.pop("isolation"), []
    if iso["pid_namespace"] and os.getpid() != 1:
        iso["pid_namespace"] = False
        warnings.append("the test driver is not PID 1 of its namespace; falling back to uid sweeps")
    import importlib

    for name in PRELOAD + list(state.get("preload", [])):
        try:
            importlib.import_module(name)
        except ImportError:
            warnings.append(f"could not preload module {name!r}")
    # Everything loaded so far is shared with every forked test process; freezing it keeps their
    # garbage collector from walking (and so copying) those pages.
    gc.collect()
    gc.freeze()
    gc.disable()
    sock.send(b"R" + json.dumps({"pid_namespace": iso["pid_namespace"], "warnings": warnings}).encode())
    return serve(sock, state, iso)


if __name__ == "__main__":
    sys.exit(zygote_main(sys.argv))
