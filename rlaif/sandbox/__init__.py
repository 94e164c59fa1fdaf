"""Run untrusted generated code against tests, locally, safely enough, and fast.

Usage::

    from rlaif.sandbox import SandboxPool, Job, assert_test
    with SandboxPool(workers=2) as pool:
        [res] = pool.run([Job(program="def f(x): return x + 1", tests=[assert_test("assert f(1) == 2")])])
        res.status, res.tests_passed   # ('passed', 1)

What it protects against (as root on Linux, where every mechanism below is available; the pool's
``isolation`` dict and every result's ``metadata["isolation"]`` / ``network_isolated`` say which are):

- **forged passes** — value tests (``assert expr == literal``, ``assert expr``, MBPP+ input/output
  pairs; nearly all MBPP and HumanEval asserts) are judged in the parent from plain data the sandbox
  reports: the expected value never enters the sandbox, values are rebuilt from builtin types only
  (an object whose ``__eq__`` always returns True is compared by its real contents), and a test with
  no reported value (``sys.exit(0)``, ``os._exit(0)``, a crash, a kill) is not a pass. Every report
  must carry the attempt's nonce and arrive in order; anything else is a protocol violation and fails;
- **the machine** — each run is its own session and process group in a fresh PID namespace (when
  the run ends the kernel kills every process in it, daemons included); ``RLIMIT_AS`` (memory),
  ``RLIMIT_CPU``, ``RLIMIT_NPROC`` (fork bombs, threads), ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, no core
  dumps; per-test and total wall-clock timeouts; stdout/stderr captured and capped (a flood is read
  and dropped, never buffered);
- **the host and this process** — the code runs as a uid of its own (not root, no supplementary
  groups, ``no_new_privs``), so it cannot signal or ptrace the parent, the workers, or other runs;
  ``RLIMIT_NPROC`` counts that uid only, so a fork bomb stops at the limit even though we are root;
- **the filesystem** — a chroot jail whose only contents are read-only bind mounts of the system
  directories and the Python standard library, plus a fresh size-limited tmpfs work dir
  (``/tmp``, also ``HOME``) that disappears with the run; home directories, the project, data sets,
  ``/proc`` and the host's ``/tmp`` are not there at all;
- **secrets and the network** — the environment is replaced by four plain variables (workers are
  exec'd with a scrubbed environment, so no secret is even in their memory); a new network namespace
  has only a loopback device that is down: no connection anywhere, 127.0.0.1 included.

What it does NOT protect against:

- **statement tests** (test code that is not a simple assert, e.g. a HumanEval ``check`` with loops)
  are decided in-process: code that deliberately finds the harness's reporting pipe and nonce (via
  frame introspection or ctypes) can forge their pass. Results count them in
  ``metadata["in_process_verdicts"]``;
- constants in the evaluated side of a non-``==`` comparison (``abs(f(x) - 0.5) < 1e-6``) are visible
  to the code, and so are the test inputs; a program that special-cases the test inputs passes;
- kernel exploits, side channels, and the CPU/memory bandwidth a run takes from its neighbours; the
  total memory of one run is bounded by ``max_processes x memory_mb`` (rlimits are per process);
- where namespaces are unavailable (not root, restrictive containers): a warning
  (:class:`SandboxIsolationWarning`) and the result metadata say what is missing; without a PID
  namespace, daemons are killed by process group and by uid (only when a private uid is available);
  without the jail, the code sees the host filesystem with its uid's permissions; without root,
  it runs as your own user and can signal your processes. Never run untrusted code that way
  on a machine you care about.
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
