"""A pool of pre-started sandbox workers that runs many programs in parallel.

Why a pool: starting a Python interpreter costs ~20-30 ms, far more than a typical candidate program
needs. Each worker (see :mod:`rlaif.sandbox.worker`) starts once, builds its namespaces and jail once,
then forks a confined process per run. Its default size is the number of CPU cores.

Each worker gets its own unprivileged uid (a random block of uids no account uses), so the per-user
process limit (``RLIMIT_NPROC``) really bounds one run's processes and threads, and processes of one
run can never signal another's, the workers, or this process.
"""

from __future__ import annotations

import functools
import os
import random
import selectors
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from queue import Empty, Queue

from rlaif.errors import RlaifError
from rlaif.records import ExecutionResult, stable_hash
from rlaif.sandbox.cases import Job, Limits
from rlaif.sandbox.frames import recv_frame, send_frame
from rlaif.sandbox.jail_paths import exec_dirs, masked_files
from rlaif.sandbox.reports import safe_text
from rlaif.sandbox.verdict import judge

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
_WORKER_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from rlaif.sandbox.worker import worker_main; sys.exit(worker_main(sys.argv))"
)
_SYSTEM_PATHS = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin"]


class SandboxIsolationWarning(UserWarning):
    """Part of the isolation could not be set up on this machine (the message says which)."""


class SandboxUnavailable(RlaifError):
    """The sandbox could not start, or could not provide the isolation that was required."""


def default_readonly_paths() -> list[str]:
    """System directories and this interpreter's standard library: all that the jail exposes.

    Site-packages are left out on purpose (add them with ``readonly_paths`` if candidate programs need
    third-party packages).
    """
    paths = list(_SYSTEM_PATHS)
    base = (sys.base_prefix, sys.base_exec_prefix)
    for p in [sysconfig.get_paths()["stdlib"], *sys.path]:
        if p and os.path.isdir(p) and p.startswith(base) and "site-packages" not in p:
            paths.append(os.path.realpath(p))
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


@functools.lru_cache(maxsize=1)
def _masked_files_cached() -> tuple[str, ...]:
    return tuple(masked_files())


def _masked_files() -> list[str]:
    """The raw-memory extension modules to mask (the directory scan is done once per process)."""
    return list(_masked_files_cached())


def _cores() -> int:
    """CPU cores this process may use (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Worker:
    def __init__(self, slot: int, uid: int, config: dict, python: str):
        self.slot, self.uid = slot, uid
        self.jail = tempfile.mkdtemp(prefix=f"rlaif-jail-{slot}-")
        cfg = dict(config, uid=uid, jail_dir=self.jail)
        import json

        self.proc = subprocess.Popen(
            [python, "-I", "-c", _WORKER_BOOT, _PACKAGE_ROOT, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        self.ready: dict | None = None

    def wait_ready(self, timeout: float) -> dict:
        self.ready = self.recv(timeout)
        if not self.ready or not self.ready.get("ready"):
            raise SandboxUnavailable(
                f"sandbox worker {self.slot} did not start (exit status {self.proc.poll()})"
            )
        return self.ready

    def send(self, obj: dict) -> None:
        send_frame(self.proc.stdin.fileno(), obj)

    def recv(self, timeout: float):
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            if not sel.select(timeout):
                return None
        return recv_frame(fd)

    def close(self, kill: bool = False) -> None:
        try:
            if kill:
                self.proc.kill()
            else:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        for path in (self.jail, (self.ready or {}).get("cgroup")):
            if path:
                try:
                    os.rmdir(path)  # the cgroup is empty once the worker and its driver have exited
                except OSError:
                    pass


class SandboxPool:
    """Run :class:`Job` s in confined processes; ``run`` returns one :class:`ExecutionResult` per job.

    ``namespaces=False`` turns off network/PID/filesystem isolation (rlimits, a separate uid where
    running as root, process groups and timeouts remain); ``require_isolation=True`` refuses to start
    where the network namespace, PID namespace or jail is unavailable instead of only warning.
    ``total_memory_mb`` bounds one run as a whole (default: twice the per-process limit plus the
    work dir's tmpfs and 128 MiB for the worker), where a memory cgroup can be created.
    ``mask_extensions=False`` leaves ``ctypes`` and the other raw-memory extension modules loadable
    in the jail: only for testing the defences behind that mask, never for untrusted code.
    Where nothing isolates the code (not root, no user namespace) the pool refuses to start unless
    ``allow_unisolated=True`` (default: the ``RLAIF_SANDBOX_ISOLATION=none`` environment variable).
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits | None = None,
        *,
        namespaces: bool = True,
        readonly_paths: Sequence[str] | None = None,
        require_isolation: bool = False,
        python: str | None = None,
        start_timeout_s: float = 120.0,
        total_memory_mb: int | None = None,
        mask_extensions: bool = True,
        allow_unisolated: bool | None = None,
    ):
        self.limits = limits or Limits()
        self.size = max(1, workers or _cores())
        self._config = {
            "namespaces": namespaces,
            "readonly_paths": list(readonly_paths)
            if readonly_paths is not None
            else default_readonly_paths(),
            "masked_files": _masked_files() if mask_extensions else [],
            "exec_paths": exec_dirs(),
            "tmp_mb": self.limits.tmp_mb,
            # one run, all its processes and its work dir together (the worker's own memory included)
            "total_memory_mb": total_memory_mb or 2 * self.limits.memory_mb + self.limits.tmp_mb + 128,
        }
        self._python = python or sys.executable
        self.uid_base = random.randrange(1 << 30, (1 << 31) - (1 << 16), 1 << 10)
        self._start_timeout = start_timeout_s
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        try:
            self._workers = [self._spawn(i) for i in range(self.size)]
            for w in self._workers:
                w.wait_ready(start_timeout_s)
        except BaseException:
            self.close()
            raise
        first = self._workers[0].ready
        self.isolation: dict = dict(first["isolation"])
        self.warnings: list[str] = list(first["warnings"])
        from rlaif.sandbox.policy import opted_out, refusal

        refused = None if opted_out(allow_unisolated) else refusal(self.isolation, self.warnings)
        if refused:
            self.close()
            raise SandboxUnavailable(refused)
        for message in self.warnings:
            warnings.warn(f"sandbox: {message}", SandboxIsolationWarning, stacklevel=2)
        if require_isolation:
            missing = [k for k in ("network", "pid_namespace", "filesystem") if not self.isolation.get(k)]
            if missing:
                self.close()
                raise SandboxUnavailable(f"required isolation unavailable: {', '.join(missing)}")

    def _spawn(self, slot: int) -> _Worker:
        return _Worker(slot, self.uid_base + slot, self._config, self._python)

    @property
    def network_isolated(self) -> bool:
        return bool(self.isolation.get("network"))

    def sandbox_uids(self) -> range:
        """The uids this pool's sandboxed processes run as (for checks that nothing outlived a run)."""
        return range(self.uid_base, self.uid_base + self.size)

    # -- running ------------------------------------------------------------------------------------
    def run(
        self,
        jobs: Sequence[Job],
        *,
        limits: Limits | None = None,
        on_result: Callable[[int, ExecutionResult], None] | None = None,
    ) -> list[ExecutionResult]:
        """Run every job (in parallel across workers); results are in input order."""
        limits = limits or self.limits

        def handle(i: int, raw: dict, elapsed: float) -> ExecutionResult:
            result = self._result(jobs[i], raw, elapsed)
            if on_result is not None:
                on_result(i, result)
            return result

        return self._dispatch(jobs, limits, handle)

    def run_one(self, job: Job, *, limits: Limits | None = None) -> ExecutionResult:
        return self.run([job], limits=limits)[0]

    def run_raw(self, jobs: Sequence[Job], *, limits: Limits | None = None) -> list[dict]:
        """The test driver's raw reports (values included), for collecting reference outputs."""
        return self._dispatch(jobs, limits or self.limits, lambda i, raw, elapsed: raw)

    def _dispatch(self, jobs: Sequence[Job], limits: Limits, handle: Callable) -> list:
        if not self._workers:
            raise SandboxUnavailable("the sandbox pool is closed")
        results: list = [None] * len(jobs)
        queue: Queue[int] = Queue()
        for i in range(len(jobs)):
            queue.put(i)
        errors: list[BaseException] = []

        def serve(slot: int) -> None:
            while not errors:
                try:
                    i = queue.get_nowait()
                except Empty:
                    return
                try:
                    started = time.monotonic()
                    raw = self._execute(slot, jobs[i], limits)
                    results[i] = handle(i, raw, time.monotonic() - started)
                except BaseException as exc:  # a bug here must not hang the other threads
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results

    def _execute(self, slot: int, job: Job, limits: Limits) -> dict:
        if not job.id:
            job.id = stable_hash(job.task_id, job.program, *(t.label for t in job.tests))
        raw = None
        worker = self._workers[slot]
        try:
            worker.send(job.wire(limits))
            raw = worker.recv(limits.total + 30.0)
        except (OSError, ValueError):
            raw = None
        if raw is None or raw.get("id") != job.id or raw.get("sandbox_error"):
            # a worker that failed once is not trusted with the next job: start a fresh one
            problem = self._replace(slot)
            if raw is None or raw.get("id") != job.id:
                raw = {"sandbox_error": "the sandbox worker died or stopped answering; it was restarted"}
            if problem:
                raw["sandbox_error"] += f" ({problem})"
        return raw

    def _replace(self, slot: int) -> str | None:
        """Replace the worker in ``slot``; returns why that failed (the next job tries again)."""
        old = self._workers[slot]
        old.close(kill=True)
        try:
            new = self._spawn(slot)
            new.wait_ready(self._start_timeout)
        except (OSError, SandboxUnavailable) as exc:
            return f"restarting the worker failed: {exc}"
        self._workers[slot] = new
        return None

    def _result(self, job: Job, raw: dict, elapsed: float) -> ExecutionResult:
        try:
            return self._build_result(job, raw, elapsed)
        except Exception as exc:  # one odd report must never cost the other samples their results
            return self._build_result(job, {"sandbox_error": f"judging the run failed: {exc!r}"}, elapsed)

    def _build_result(self, job: Job, raw: dict, elapsed: float) -> ExecutionResult:
        verdict = judge(job, raw)
        failures = [
            {"test": i, "status": s, "detail": safe_text(d[:300])}
            for i, (s, d) in enumerate(zip(verdict.per_test, verdict.details, strict=True))
            if s != "passed"
        ][:5]
        metadata = {
            "isolation": {k: v for k, v in self.isolation.items() if k != "uid"},
            "attempts": raw.get("attempts", 0),
            # tests whose verdict was decided inside the candidate's process: none since statement
            # tests run in the worker (the key stays for readers of earlier results)
            "in_process_verdicts": 0,
            "stdout_bytes": raw.get("stdout_bytes", 0),
            "stderr_bytes": raw.get("stderr_bytes", 0),
            "failures": failures,
            **{k: v for k, v in job.metadata.items() if k != "sample_index"},
        }
        return ExecutionResult(
            id=job.id,
            task_id=job.task_id,
            sample_index=job.metadata.get("sample_index"),
            status=verdict.status,
            passed=verdict.status == "passed",
            tests_passed=verdict.tests_passed,
            tests_total=len(job.tests),
            per_test=verdict.per_test,
            duration_s=float(raw.get("duration_s", elapsed)),
            diagnostics=safe_text(verdict.diagnostics),  # whatever a program reported: encodable
            stdout=safe_text(raw.get("stdout", "")),
            stderr=safe_text(raw.get("stderr", "")),
            network_isolated=self.network_isolated,
            metadata=metadata,
        )

    # -- lifetime -----------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            w.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
