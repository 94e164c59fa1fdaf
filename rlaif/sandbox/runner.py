"""The test driver: runs one job at a time in confined test processes (standard library only).

The driver is started by :mod:`rlaif.sandbox.jail` as a fresh interpreter and, where the kernel
allows, as PID 1 of the worker's own PID namespace, inside its network namespace and jail. It imports
the common standard-library modules, freezes them (so forked children share those pages untouched),
and serves jobs from its stdin. Paying interpreter start-up once per worker instead of once per
program is what makes the sandbox faster than a fork-per-sample harness.

Per job: a fresh work dir on the jail's size-limited tmpfs, then a test process T per attempt:

    driver (root; never runs candidate code)
      └─ T: own session, chroot jail, rlimits, unprivileged uid; runs the program, then the tests
            (harness.run_in_child), reporting through a pipe only it and the driver hold

The driver reads T's messages, stdout and stderr (capped), enforces the per-test and total
timeouts, and after every attempt kills every other process in the namespace (``kill(-1)`` as its
PID 1), so nothing started by the candidate outlives the attempt. When T dies or times out in the
middle of a test, that test is recorded and a fresh T continues with the remaining ones, so per-test
results survive a crash. After the job the work dir is removed.

Without a PID namespace the driver runs in the worker itself and falls back to killing T's process
group and every process of the sandbox uid; the job results say which isolation was in place.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import shutil
import signal
import struct
import sys
import tempfile
import time

from rlaif.sandbox import harness
from rlaif.sandbox.confine import CONFINED_OK, confine

_DRAIN_GRACE_S = 0.5


# -- framing on the worker's pipes ----------------------------------------------------------------
def send_frame(fd: int, obj) -> None:
    data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    _write_all(fd, struct.pack(">I", len(data)) + data)


def recv_frame(fd: int):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# -- one job ----------------------------------------------------------------------------------------
def run_job(job: dict, cfg: dict, iso: dict) -> dict:
    """Run one job in a fresh work dir; returns the raw report (never raises for bad code)."""
    if iso["filesystem"]:
        host_dir, inner_dir = cfg["jail_dir"] + "/tmp/run", "/tmp/run"
        shutil.rmtree(host_dir, ignore_errors=True)
        os.mkdir(host_dir, 0o700)
    else:
        host_dir = inner_dir = tempfile.mkdtemp(prefix="rlaif-run-")
    try:
        if iso["uid_drop"]:
            os.chown(host_dir, iso["uid"], iso["uid"])
        return TestDriver(job, cfg, iso, inner_dir).run()
    except Exception as exc:
        return {"sandbox_error": f"test driver: {exc!r}"}
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)  # fd-based: symlinks planted by the code are not followed


def _reap_orphans(wait_s: float = 0.0) -> None:
    """Reap finished children (orphans come to us as subreaper), waiting up to ``wait_s`` for the
    ones just killed: an unreaped zombie would still count against the sandbox uid's process limit."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.001)


def _sweep_without_pid_namespace(iso: dict) -> None:
    """Kill every process of the sandbox uid (only possible where the uid is ours alone)."""
    if not iso["uid_drop"]:
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(iso["uid"], iso["uid"], iso["uid"])
            for _ in range(3):  # as that uid, kill(-1) reaches only that uid's processes
                os.kill(-1, signal.SIGKILL)
                time.sleep(0.001)
        except (ProcessLookupError, PermissionError):
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _oom_kills(events_file: str | None) -> int:
    """The memory cgroup's count of out-of-memory kills (0 without a cgroup)."""
    if not events_file:
        return 0
    try:
        with open(events_file) as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _Capture:
    """The first ``cap`` bytes of a stream, plus the total size (the rest is read and dropped)."""

    def __init__(self, cap: int):
        self.cap, self.data, self.total = cap, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class TestDriver:
    """The driver's side of one job: attempts of the test process until every test has an outcome
    or the time is up."""

    def __init__(self, job: dict, cfg: dict, iso: dict, workdir: str | None):
        self.job, self.cfg, self.iso, self.workdir = job, cfg, iso, workdir
        self.limits = job["limits"]
        self.n = len(job["tests"])
        self.outcomes: list[dict | None] = [None] * self.n
        self.load: dict | None = None
        self.stdout = _Capture(self.limits["output_bytes"])
        self.stderr = _Capture(self.limits["output_bytes"])
        self.total_deadline = time.monotonic() + self.limits["total_timeout"]
        self.violation: str | None = None
        self.attempts = 0

    def run(self) -> dict:
        start = 0
        while start < self.n and time.monotonic() < self.total_deadline and self.violation is None:
            self.attempts += 1
            start = self._attempt(start)
            if self.load is not None and not self.load.get("ok"):
                break
        if self.load is None:
            self.load = {"ok": False, "e": "timeout"}
        return {
            "load": self.load,
            "tests": self.outcomes,
            "stdout": self.stdout.text(),
            "stderr": self.stderr.text(),
            "stdout_bytes": self.stdout.total,
            "stderr_bytes": self.stderr.total,
            "attempts": self.attempts,
            "violation": self.violation,
        }

    # one attempt: fork T, follow it, record how the current test ended
    def _attempt(self, start: int) -> int:
        nonce = os.urandom(12).hex()
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        conf_r, conf_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                confine(self.cfg, self.iso, self.limits, self.workdir, out_w, err_w, rep_w, conf_w)
            except BaseException as exc:
                for fd in (4, conf_w):  # wherever the confinement channel is at this point
                    try:
                        os.write(fd, f"error: {exc!r}".encode())
                        break
                    except OSError:
                        pass
                os._exit(71)
            try:
                harness.run_in_child(self.job, start, 3, nonce)
            finally:
                os._exit(71)
        for fd in (rep_w, out_w, err_w, conf_w):
            os.close(fd)
        state = _AttemptState(start, nonce, self.limits)
        loaded_before = self.load is not None and self.load.get("ok")
        oom_before = _oom_kills(self.cfg.get("cgroup_events"))
        ended = self._follow(pid, state, rep_r, out_r, err_r, conf_r)
        if ended.get("sig") == signal.SIGKILL and _oom_kills(self.cfg.get("cgroup_events")) > oom_before:
            ended["oom"] = True
        for fd in (rep_r, out_r, err_r, conf_r):
            os.close(fd)
        if not state.confined:
            raise RuntimeError(
                f"the test process could not be confined ({state.confine_error or 'no answer'})"
            )
        self.outcomes[start : state.current] = [state.results[i] for i in range(start, state.current)]
        if state.violation:
            self.violation = state.violation
            if state.phase == "load" and not loaded_before:
                self.load = {"ok": False, "e": "violation", "msg": state.violation}
            else:
                self.load = {"ok": True}
                if state.current < self.n:
                    self.outcomes[state.current] = {"e": "violation", "msg": state.violation}
            return self.n
        if loaded_before and state.phase in ("load", "over"):
            # a restart could not load the program again (time ran out, or it is not deterministic):
            # that costs the test it was restarted for, not the tests already recorded
            reload_failure = state.load_msg if state.phase == "over" else ended
            self.outcomes[start] = {**reload_failure, "reload": True}
            return start + 1
        if state.phase == "load":
            self.load = {"ok": False, **ended}
            return self.n
        if state.phase == "over":
            self.load = state.load_msg
            return self.n
        self.load = {"ok": True}
        if state.phase == "tests" and state.current < self.n:
            self.outcomes[state.current] = ended
            return state.current + 1
        return self.n

    def _follow(self, pid: int, st: _AttemptState, rep_r: int, out_r: int, err_r: int, conf_r: int) -> dict:
        """Read T's channels until it exits or its time runs out; returns how it ended."""
        pidfd = os.pidfd_open(pid)
        sel = selectors.DefaultSelector()
        for fd in (rep_r, out_r, err_r, conf_r):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        sel.register(pidfd, selectors.EVENT_READ)
        timed_out = exited = False
        test_deadline = time.monotonic() + self.limits["timeout"]
        try:
            while not exited and st.violation is None:
                now = time.monotonic()
                deadline = min(test_deadline, self.total_deadline)
                if st.phase in ("done", "over"):
                    deadline = min(deadline, st.over_at + _DRAIN_GRACE_S)
                if now >= deadline:
                    timed_out = st.phase not in ("done", "over")
                    break
                for key, _ in sel.select(deadline - now):
                    if key.fd == pidfd:
                        exited = True
                        continue
                    if self._read(key.fd, st, rep_r, out_r, err_r, conf_r, sel):
                        test_deadline = time.monotonic() + self.limits["timeout"]
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _, status = os.waitpid(pid, 0)
            self._sweep()
            sel.unregister(pidfd)
            drain_until = time.monotonic() + _DRAIN_GRACE_S  # every writer is dead: EOF comes at once
            while sel.get_map() and time.monotonic() < drain_until:
                for key, _ in sel.select(max(0.0, drain_until - time.monotonic())):
                    self._read(key.fd, st, rep_r, out_r, err_r, conf_r, sel)
        finally:
            sel.close()
            os.close(pidfd)
        if timed_out:
            return {"e": "timeout"}
        if os.WIFSIGNALED(status):
            return {"e": "signal", "sig": os.WTERMSIG(status)}
        return {"e": "exit", "code": os.waitstatus_to_exitcode(status)}

    def _read(self, fd, st, rep_r, out_r, err_r, conf_r, sel) -> bool:
        """Consume what is readable on ``fd``; True when a test (or the load) just finished."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            sel.unregister(fd)
            return False
        if fd == out_r:
            self.stdout.add(chunk)
        elif fd == err_r:
            self.stderr.add(chunk)
        elif fd == conf_r:
            st.confined = st.confined or chunk.startswith(CONFINED_OK)
            if chunk.startswith(b"error:"):
                st.confine_error = chunk[6:200].decode(errors="replace").strip()
        elif fd == rep_r:
            return st.feed(chunk, self.n)
        return False

    def _sweep(self) -> None:
        """Nothing started by the candidate survives an attempt."""
        if self.iso["pid_namespace"] and os.getpid() == 1:
            try:
                os.kill(-1, signal.SIGKILL)  # PID 1 of our own namespace: reaches only its members
            except ProcessLookupError:
                pass
            while True:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break
        else:
            _sweep_without_pid_namespace(self.iso)
            _reap_orphans(wait_s=1.0)


class _AttemptState:
    """Parses T's report stream for one attempt, enforcing order and the nonce."""

    def __init__(self, start: int, nonce: str, limits: dict):
        self.current, self.nonce = start, nonce
        self.phase = "load"  # load -> tests -> done | over (load failed)
        self.results: dict[int, dict] = {}
        self.load_msg: dict | None = None
        self.violation: str | None = None
        self.confined = False
        self.confine_error = ""
        self.over_at = 0.0
        self.buf = b""
        self.max_line = limits["max_value_bytes"] + 4096
        self.budget = limits["max_report_bytes"]

    def feed(self, chunk: bytes, n: int) -> bool:
        self.budget -= len(chunk)
        if self.budget < 0:
            self.violation = "the test process sent more report data than allowed"
            return False
        self.buf += chunk
        progressed = False
        while b"\n" in self.buf and self.violation is None:
            line, self.buf = self.buf.split(b"\n", 1)
            progressed |= self._message(line, n)
        if len(self.buf) > self.max_line:
            self.violation = "a report message exceeds the size limit"
        return progressed

    def _message(self, line: bytes, n: int) -> bool:
        try:
            msg = json.loads(line)
        except ValueError:
            self.violation = "malformed report message"
            return False
        if type(msg) is not dict or msg.get("k") != self.nonce:
            self.violation = "report message without the run's nonce (forged or corrupted)"
            return False
        event = msg.get("e")
        if self.phase == "load" and event in ("load_ok", "load_err"):
            self.load_msg = {"ok": True} if event == "load_ok" else _clean(msg)
            self.phase = "tests" if event == "load_ok" else "over"
            self.over_at = time.monotonic()
            return True
        if self.phase == "tests" and event in ("val", "exc", "unenc", "ok"):
            if msg.get("i") != self.current:
                self.violation = f"report for test {msg.get('i')!r} while test {self.current} was running"
                return False
            self.results[self.current] = _clean(msg)
            self.current += 1
            return True
        if self.phase == "tests" and event == "done" and self.current == n:
            self.phase, self.over_at = "done", time.monotonic()
            return False
        if self.phase in ("done", "over"):
            return False  # nothing after the end can change a recorded outcome
        self.violation = f"unexpected report message {event!r} during {self.phase}"
        return False


def _clean(msg: dict) -> dict:
    out = {"e": msg.get("e")}
    for key in ("type", "msg", "line", "v", "syntax"):
        if key in msg:
            out[key] = msg[key]
    if isinstance(out.get("msg"), str):
        out["msg"] = out["msg"][:500]
    if isinstance(out.get("type"), str):
        out["type"] = out["type"][:100]
    return out


# -- entry point ------------------------------------------------------------------------------------
PRELOAD = (
    "array bisect cmath collections copy datetime decimal fractions functools hashlib heapq itertools "
    "json math operator random re statistics string sys textwrap typing unicodedata"
).split()


def driver_main(argv: list[str]) -> int:
    """Serve jobs from stdin until it closes (started by :func:`rlaif.sandbox.jail.worker_main`)."""
    state = json.loads(argv[1])
    iso, warnings = state.pop("isolation"), state.pop("warnings")
    cfg = state
    if iso["pid_namespace"] and os.getpid() != 1:
        iso["pid_namespace"] = False
        warnings.append("the test driver is not PID 1 of its namespace; falling back to uid sweeps")
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a stray print can never corrupt the protocol
    os.close(devnull)
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)
    import importlib

    for name in PRELOAD + list(cfg.get("preload", [])):
        try:
            importlib.import_module(name)
        except ImportError:
            warnings.append(f"could not preload module {name!r}")
    # Everything loaded so far is shared with every forked test process; freezing it keeps their
    # garbage collector from walking (and so copying) those pages, and the driver itself makes no
    # garbage cycles worth collecting.
    gc.collect()
    gc.freeze()
    gc.disable()
    cgroup = os.path.dirname(cfg["cgroup_events"]) if cfg.get("cgroup_events") else None
    send_frame(proto_out, {"ready": True, "isolation": iso, "warnings": warnings, "cgroup": cgroup})
    while True:
        job = recv_frame(proto_in)
        if job is None:
            return 0
        started = time.monotonic()
        try:
            result = run_job(job, cfg, iso)
        except Exception as exc:
            result = {"sandbox_error": f"driver: {exc!r}"}
        result["id"] = job.get("id")
        result["duration_s"] = time.monotonic() - started
        send_frame(proto_out, result)


if __name__ == "__main__":
    sys.exit(driver_main(sys.argv))
