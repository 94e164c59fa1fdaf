"""Run untrusted generated code against tests, locally, safely enough, and fast.

Usage::

    from rlaif.sandbox import SandboxPool, Job, assert_test
    with SandboxPool(workers=2) as pool:
        [res] = pool.run([Job(program="def f(x): return x + 1", tests=[assert_test("assert f(1) == 2")])])
        res.status, res.tests_passed   # ('passed', 1)

What it protects against (as root on Linux, where every mechanism below is available; the pool's
``isolation`` dict and every result's ``metadata["isolation"]`` / ``network_isolated`` say which are):

- **forged passes** -- value tests (``assert expr == literal``, ``assert expr``, MBPP+ input/output
  pairs; nearly all MBPP and HumanEval asserts) are judged in the parent from plain data the sandbox
  reports: the expected value never enters the sandbox, values are rebuilt from builtin types only
  (an object whose ``__eq__`` always returns True is compared by its real contents), and a test with
  no reported value (``sys.exit(0)``, ``os._exit(0)``, a crash, a kill) is not a pass. Every report
  must carry the attempt's nonce and arrive in order; anything else is a protocol violation and fails.
  The harness binds what it calls before the program runs, so rebinding builtins (``exec``,
  ``AssertionError``) or the harness module changes nothing;
- **the machine** -- each run is its own session and process group inside the worker's PID
  namespace, whose PID 1 (the test driver) kills every other process in it after each attempt, daemons
  included; ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_NPROC`` (fork bombs, threads),
  ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, no core dumps; per-test and total wall-clock timeouts;
  stdout/stderr captured and capped (a flood is read and dropped, never buffered); a memory cgroup
  per worker bounds a run's total memory (all its processes and its work dir; ``total_memory_mb``),
  and an out-of-memory kill inside it is reported as ``memory_exceeded``;
- **the host and this process** -- the code runs as a uid of its own (one per worker, from a random
  block no account uses; not root, no supplementary groups), so it cannot signal or ptrace the parent,
  the workers, or other runs, and ``RLIMIT_NPROC`` (per uid) stops a fork bomb although we are root;
- **the filesystem** -- a chroot jail whose only contents are read-only, nosuid bind mounts of the
  system directories and the Python standard library, ``/dev/{null,zero,random,urandom}``, and a fresh
  work dir (also ``HOME`` and ``TMPDIR``) on a size-limited tmpfs, removed after the run; home
  directories, the project, data sets, ``/proc`` and the host's ``/tmp`` are not there at all.
  ``ctypes`` and the C-API test modules are masked in the jail and never loaded in the driver, so the
  code cannot read raw memory;
- **secrets and the network** -- the environment is replaced by four plain variables (workers are
  exec'd with a scrubbed environment, so no secret is even in their memory); a new network namespace
  has only a loopback device that is down: no connection anywhere, 127.0.0.1 included.

Determinism: every sandboxed interpreter uses string-hash seed 0, so the order of a set of strings
is the same in every worker (reference outputs and candidates' outputs are compared across workers).

What it does NOT protect against:

- **statement tests** (test code that is not a simple assert, e.g. a HumanEval ``check`` with loops)
  are decided in-process: code that deliberately finds the harness's reporting pipe and nonce (frame
  introspection) can forge their pass. Results count them in ``metadata["in_process_verdicts"]``;
- constants in the evaluated side of a non-``==`` comparison (``abs(f(x) - 0.5) < 1e-6``) are visible
  to the code, and so are the test inputs; a program that special-cases the test inputs passes;
- code can inspect live Python objects of its own process (the job it was given: its program and test
  expressions, never expected values); freed memory of earlier runs in the same worker is not wiped
  (without ``ctypes`` or ``/proc`` there is no way to read it from Python, short of an interpreter bug);
- kernel exploits, side channels, and the CPU and memory bandwidth a run takes from its neighbours;
  without a memory cgroup (``isolation["memory_cgroup"]`` False: cgroup v2 without delegation, not
  root), one run's total memory is bounded only by ``max_processes x memory_mb``;
- there is no ``/proc`` and no ``/dev/shm`` in the jail: ``multiprocessing`` locks and pools fail;
- where namespaces are unavailable (not root, restrictive containers): a warning
  (:class:`SandboxIsolationWarning`) and the result metadata say what is missing; without a PID
  namespace, daemons are killed by process group and by uid (only with a private uid, i.e. as root);
  without the jail, the code sees the host filesystem with its uid's permissions and its work dir is
  on the host's temp dir; without root, it runs as your own user and can signal your processes.
  Never run untrusted code that way on a machine you care about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "Job",
    "Limits",
    "SandboxIsolationWarning",
    "SandboxPool",
    "SandboxUnavailable",
    "TestCase",
    "assert_test",
    "call_test",
    "statement_test",
]

if TYPE_CHECKING:
    from rlaif.sandbox.pool import SandboxIsolationWarning, SandboxPool, SandboxUnavailable
    from rlaif.sandbox.spec import Job, Limits, TestCase, assert_test, call_test, statement_test


def __getattr__(name: str):
    # Lazy on purpose: the worker process imports rlaif.sandbox.runner and must not pay for pydantic.
    if name in ("SandboxPool", "SandboxIsolationWarning", "SandboxUnavailable"):
        from rlaif.sandbox import pool

        return getattr(pool, name)
    if name in ("Job", "Limits", "TestCase", "assert_test", "call_test", "statement_test"):
        from rlaif.sandbox import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'rlaif.sandbox' has no attribute {name!r}")
