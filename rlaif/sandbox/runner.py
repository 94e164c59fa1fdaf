"""The worker's job loop: runs one job at a time through test processes the zygote forks.

Process layout per worker (see :mod:`rlaif.sandbox.worker` for how it is set up)::

    worker W (root; host PID namespace; namespaces, jail and cgroup set up; serves the pool)
      └─ zygote Z (fresh interpreter, PID 1 of the worker's PID namespace; never sees job data)
           └─ T per attempt: own process group, chroot jail, rlimits, unprivileged uid; runs the program,
              then the tests (harness.run_in_child), reporting through a pipe only it and W hold

W reads T's messages (order, nonce and size checked by :mod:`rlaif.sandbox.reports`), stdout and
stderr (capped), runs statement tests' code itself (:mod:`rlaif.sandbox.trusted`), calling into T on
the report socket for each call of the candidate, enforces the per-test and total timeouts, and
after every attempt (in a ``finally``) has Z kill every other process in the namespace and reap it,
so nothing started by the candidate outlives the attempt. When T dies or times out in the middle of a
test, that test is recorded and a fresh T continues with the remaining ones, so per-test results
survive a crash. After the job (again in a ``finally``) the work dir is removed and the IPC objects
of the namespace are deleted (``cleanup``, from the jail module).

Every job ends as exactly one report: any error of the machinery becomes ``sandbox_error`` (and the
worker exits afterwards if its zygote is gone, so the pool replaces it). Standard library only.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable

from rlaif.sandbox.calls import AttemptIO, accepted_names, for_sandbox
from rlaif.sandbox.cgroup import oom_kills
from rlaif.sandbox.codec import decode
from rlaif.sandbox.confine import CONFINED_OK
from rlaif.sandbox.frames import ZygoteGone, read_message, recv_frame, send_frame, write_all
from rlaif.sandbox.reports import AttemptState
from rlaif.sandbox.trusted import AttemptOver, Session, judging, run_statement

_DRAIN_GRACE_S = 0.5
_PIPE_BUFFER = 65536  # Linux's default pipe capacity


# -- one job ----------------------------------------------------------------------------------------
def run_job(job: dict, cfg: dict, iso: dict, zygote: socket.socket, prepare: Callable[[], str],
            cleanup: Callable[[], None]) -> dict:  # fmt: skip
    """Run one job in a fresh work dir; returns the raw report (never raises for bad code)."""
    report = None
    try:
        workdir = prepare()
        report = TestDriver(job, cfg, iso, workdir, zygote).run()
    except ZygoteGone:
        raise
    except Exception as exc:
        report = {"sandbox_error": f"test driver: {exc!r}"}
    finally:
        try:
            cleanup()  # no file or IPC object of this run is left for the next one
        except Exception as exc:
            report = {"sandbox_error": f"cleaning up after the run failed: {exc!r}"}
    return report


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
    """The worker's side of one job: attempts of the test process until every test has an outcome
    or the time is up."""

    def __init__(self, job: dict, cfg: dict, iso: dict, workdir: str, zygote: socket.socket):
        self.job, self.cfg, self.iso, self.workdir, self.zygote = job, cfg, iso, workdir, zygote
        self.limits = job["limits"]
        self.n = len(job["tests"])
        self.outcomes: list[dict | None] = [None] * self.n
        self.load: dict | None = None
        self.stdout = _Capture(self.limits["output_bytes"])
        self.stderr = _Capture(self.limits["output_bytes"])
        self.total_deadline = time.monotonic() + self.limits["total_timeout"]
        self.violation: str | None = None
        self.attempts = 0
        # T gets statement tests' names only: their code (and so their expected values) stays here
        contexts = job.get("contexts") or []
        for t in job["tests"]:  # the problem code the tests share, sent once (Job.wire)
            if type(t.get("context")) is int and 0 <= t["context"] < len(contexts):
                t["context"] = contexts[t["context"]]
        self.wire_job = {**job, "tests": [for_sandbox(t) for t in job["tests"]], "contexts": []}
        self._memory = int(self.limits["memory_mb"] * 2**20)  # what the worker may use per test
        self.timing: dict[str, float] = {"worker_judge": 0.0}  # see _clock
        self._stmt_s = 0.0
        self._bases: dict = {}  # the problem's code, run once here (rlaif.sandbox.trusted.namespace)

    def run(self) -> dict:
        with judging(self._memory):
            return self._run()

    def _run(self) -> dict:
        start = 0
        while start < self.n and time.monotonic() < self.total_deadline and self.violation is None:
            self.attempts += 1
            start = self._attempt(start)
            if self.load is not None and not self.load.get("ok"):
                break
        if self.load is None:
            self.load = {"ok": False, "e": "timeout"}
        for i, test in enumerate(self.job["tests"]):
            outcome = self.outcomes[i]
            if test["kind"] == "stmt" and test.get("calls") and outcome and outcome.get("e") == "val":
                started = time.monotonic()
                self.outcomes[i] = self._judge_ahead(test, outcome.get("v"))
                self.timing["worker_judge"] += time.monotonic() - started
        return {
            "load": self.load,
            "tests": self.outcomes,
            "stdout": self.stdout.text(),
            "stderr": self.stderr.text(),
            "stdout_bytes": self.stdout.total,
            "stderr_bytes": self.stderr.total,
            "attempts": self.attempts,
            "violation": self.violation,
            "timing": self.timing,
        }

    def _attempt(self, start: int) -> int:
        """One attempt: fork T for tests ``start..``, follow it, record how it ended; returns the
        first test the next attempt must run (``n``: none)."""
        loaded_before = bool(self.load is not None and self.load.get("ok"))
        oom_before = oom_kills(self.cfg.get("cgroup_events"))
        state, ended = self._launch_and_follow(start)
        self._clock(state)
        if ended.get("sig") == signal.SIGKILL and oom_kills(self.cfg.get("cgroup_events")) > oom_before:
            ended["oom"] = True
        if not state.confined:
            raise RuntimeError(
                f"the test process could not be confined ({state.confine_error or 'no answer'})"
            )
        return self._record(start, state, ended, loaded_before)

    def _clock(self, st: AttemptState) -> None:
        """Where an attempt's time went (seconds, summed over attempts; reported as ``timing``):
        ``tests`` is the test process's share, the worker's running of test code is ``worker_judge``."""
        end = time.monotonic()
        confined = st.confined_at if st.confined else end
        loaded = max(st.loaded_at, confined) if st.phase != "load" else end
        finished = st.over_at if st.phase in ("done", "over") else end
        in_worker, self._stmt_s = self._stmt_s, 0.0  # statement tests run here during the attempt
        for key, span in (("fork_confine", confined - st.started), ("load", loaded - confined),
                          ("tests", finished - loaded - in_worker), ("sweep", end - finished)):  # fmt: skip
            self.timing[key] = self.timing.get(key, 0.0) + max(span, 0.0)

    def _launch_and_follow(self, start: int) -> tuple[AttemptState, dict]:
        """Hand the zygote T's pipe ends, give T its job, and read T until it has ended; every pipe
        end of the attempt is closed here, whatever happens."""
        nonce = os.urandom(12).hex()
        request = {"job": self.wire_job, "start": start, "nonce": nonce, "workdir": self.workdir}
        data = json.dumps(request, separators=(",", ":")).encode()
        job_r, job_w = os.pipe()
        rep_sock, rep_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        rep_r, rep_w = rep_sock.detach(), rep_peer.detach()  # both ways: T's reports, our calls
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        conf_r, conf_w = os.pipe()
        state = AttemptState(start, nonce, self.limits, [t["kind"] for t in self.wire_job["tests"]])
        try:
            early = len(data) <= _PIPE_BUFFER  # fits in the pipe: T finds its job the moment it starts
            if early:
                write_all(job_w, data)
                os.close(job_w)
                job_w = -1
            try:
                socket.send_fds(self.zygote, [b"F"], [job_r, out_w, err_w, rep_w, conf_w])
            except OSError as exc:
                raise ZygoteGone(f"the zygote is gone ({exc!r})") from None
            for fd in (job_r, rep_w, out_w, err_w, conf_w):
                os.close(fd)
            job_r = rep_w = out_w = err_w = conf_w = -1
            if not early:
                try:
                    write_all(job_w, data)
                except OSError:
                    pass  # T died before reading its job: seen below as an early exit
                os.close(job_w)
                job_w = -1
            ended = self._follow(state, rep_r, out_r, err_r, conf_r)
        finally:
            for fd in (job_r, job_w, rep_w, out_w, err_w, conf_w, rep_r, out_r, err_r, conf_r):
                if fd >= 0:
                    os.close(fd)
        return state, ended

    def _record(self, start: int, state: AttemptState, ended: dict, loaded_before: bool) -> int:
        """Record the attempt's outcomes: the tests T reported, and how the test it was in ended
        (a crash, a timeout, a violation); returns where the next attempt starts."""
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

    def _follow(self, st: AttemptState, rep_r: int, out_r: int, err_r: int, conf_r: int) -> dict:
        """Read T's channels until it exits (the zygote then reports its status) or its time runs out.

        Whatever happens while reading (a malformed report included), the ``finally`` makes sure the
        zygote has killed and reaped every process of the attempt before anything else."""
        sel = selectors.DefaultSelector()
        timed_out = False
        status: bytes | None = None
        zfd = self.zygote.fileno()
        try:
            for fd in (rep_r, out_r, err_r, conf_r):
                os.set_blocking(fd, False)
                sel.register(fd, selectors.EVENT_READ)
            sel.register(zfd, selectors.EVENT_READ)
            test_deadline = time.monotonic() + self.limits["timeout"]
            io = AttemptIO(self, st, sel, zfd, (rep_r, out_r, err_r, conf_r))
            while status is None and st.violation is None:
                now = time.monotonic()
                deadline = min(test_deadline, self.total_deadline)
                if st.phase in ("done", "over"):
                    deadline = min(deadline, st.over_at + _DRAIN_GRACE_S)
                if now >= deadline:
                    timed_out = st.phase not in ("done", "over")
                    break
                if io.pump(deadline):
                    test_deadline = time.monotonic() + self.limits["timeout"]
                status = io.status
                if st.statement is not None and status is None and st.violation is None:
                    try:
                        started = time.monotonic()
                        try:
                            st.statement_done(self._statement(st, io))
                        finally:
                            self._stmt_s += time.monotonic() - started
                            self.timing["worker_judge"] += time.monotonic() - started
                        io.send(rep_r, {"next": 1})
                    except AttemptOver as over:
                        timed_out = over.outcome.get("e") == "timeout"
                        status = io.status
                        break
                    test_deadline = time.monotonic() + self.limits["timeout"]
        finally:
            if zfd in sel.get_map():
                sel.unregister(zfd)
            if status is None:
                try:
                    self.zygote.send(b"K")
                except OSError as exc:
                    sel.close()
                    raise ZygoteGone(f"the zygote is gone ({exc!r})") from None
                status = read_message(self.zygote)
        try:
            drain_until = time.monotonic() + _DRAIN_GRACE_S  # every writer is dead: EOF comes at once
            while sel.get_map() and time.monotonic() < drain_until:
                for key, _ in sel.select(max(0.0, drain_until - time.monotonic())):
                    self._read(key.fd, st, rep_r, out_r, err_r, conf_r, sel)
        finally:
            sel.close()
        if status[:1] != b"S":
            raise ZygoteGone(f"unexpected answer of the zygote {status[:20]!r}")
        code = json.loads(status[1:])
        if timed_out:
            return {"e": "timeout"}
        if code is None:
            return {"e": "exit", "code": None}
        if os.WIFSIGNALED(code):
            return {"e": "signal", "sig": os.WTERMSIG(code)}
        return {"e": "exit", "code": os.waitstatus_to_exitcode(code)}

    def _judge_ahead(self, test: dict, results) -> dict:
        """Run an assert whose candidate calls were made ahead: each call the test makes takes the
        first unused result of the same call (name and arguments)."""
        # compared as values, not as encodings: a set literal's items may be listed in another order
        planned = [[name, decode([args, kwargs]), reply] for (_src, name, args, kwargs), reply
                   in zip(test["calls"], results if type(results) is list else [], strict=False)]  # fmt: skip

        def request(name: str, args, kwargs) -> dict:
            made = decode([args, kwargs])
            for call in planned:
                if call[0] == name and call[1] == made and call[2] is not None:
                    reply, call[2] = call[2], None
                    if "x" in reply and type(reply["x"]) is list and len(reply["x"]) == 2:
                        return {"e": "raise", "type": str(reply["x"][0]), "msg": str(reply["x"][1])}
                    return {"e": "ret", **{k: reply[k] for k in ("v", "u") if k in reply}}
            raise AttemptOver({"e": "violation", "msg": f"no result for the call {name}(...) of the test"})

        deadline = time.monotonic() + self.limits["timeout"]
        resolved = {name: {"f": 1} for name in test["names"]}
        try:
            return run_statement(test, resolved, Session(request), deadline, self._bases)
        except AttemptOver as over:
            return over.outcome

    def _statement(self, st: AttemptState, io: AttemptIO) -> dict:
        """Run the statement test T just reached here, calling into T for the candidate's calls."""
        i, reported = st.statement
        names = accepted_names(reported, self.job["tests"][i]["names"])
        deadline = min(time.monotonic() + self.limits["timeout"], self.total_deadline)

        def request(name: str, args, kwargs) -> dict:
            st.expect, st.reply = st.expect + 1 if st.expect is not None else 0, None
            io.send(io.fds[0], {"c": st.expect, "n": name, "a": args, "kw": kwargs})
            while st.reply is None:
                if io.status is not None or st.violation is not None:
                    raise AttemptOver(io.ended())
                if time.monotonic() >= deadline:
                    raise AttemptOver({"e": "timeout"})
                io.pump(deadline)
            return st.reply

        return run_statement(self.job["tests"][i], names, Session(request), deadline, self._bases)

    def _read(self, fd, st, rep_r, out_r, err_r, conf_r, sel) -> bool:
        """Consume what is readable on ``fd``; True when a test (or the load) just finished."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        except ConnectionResetError:  # T died with a request of ours unread: its end of the socket
            chunk = b""
        if not chunk:
            sel.unregister(fd)
            return False
        if fd == out_r:
            self.stdout.add(chunk)
        elif fd == err_r:
            self.stderr.add(chunk)
        elif fd == conf_r:
            if not st.confined and chunk.startswith(CONFINED_OK):
                st.confined, st.confined_at = True, time.monotonic()
            if chunk.startswith(b"error:"):
                st.confine_error = chunk[6:200].decode(errors="replace").strip()
        elif fd == rep_r:
            return st.feed(chunk, self.n)
        return False


# -- entry point ------------------------------------------------------------------------------------
def serve_jobs(proto_in: int, proto_out: int, zygote: socket.socket, cfg: dict, iso: dict,
               prepare: Callable[[], str], cleanup: Callable[[], None]) -> int:  # fmt: skip
    """Serve jobs from the pool until it closes the pipe (or the zygote is gone: then exit, and the
    pool, seeing the worker die, replaces it)."""
    while True:
        job = recv_frame(proto_in)
        if job is None:
            return 0
        started = time.monotonic()
        gone = None
        try:
            result = run_job(job, cfg, iso, zygote, prepare, cleanup)
        except ZygoteGone as exc:
            result, gone = {"sandbox_error": f"worker: {exc}"}, exc
        except Exception as exc:
            result = {"sandbox_error": f"worker: {exc!r}"}
        result["id"] = job.get("id")
        result["duration_s"] = time.monotonic() - started
        send_frame(proto_out, result)
        if gone is not None:
            return 75
