"""Run untrusted generated code against tests, locally, safely enough, and fast.

Usage::

    from rlaif.sandbox import SandboxPool, Job, assert_test
    with SandboxPool(workers=2) as pool:
        [res] = pool.run([Job(program="def f(x): return x + 1", tests=[assert_test("assert f(1) == 2")])])
        res.status, res.tests_passed   # ('passed', 1)

What it protects against (as root on Linux, where every mechanism below is available; the pool's
``isolation`` dict and every result's ``metadata["isolation"]`` / ``network_isolated`` say which are):

- **forged passes** -- the sandbox never decides a verdict; the parent judges every test from plain
  values the sandbox reports (builtin types only, read with the base types' own methods: an object
  whose ``__eq__`` always returns True is compared by its real contents, or is unencodable and fails):

  * value tests (every single ``assert``, MBPP+ input/output pairs): only the *holes* of the test
    expression -- the candidate's calls and names, items taken from their results -- run in the
    sandbox. The rest (comparisons, ``abs(...) < eps``, ``math.isclose``, ``sorted``, arithmetic,
    and the expected value) is evaluated in the parent with the real builtins on plain values, so
    shadowing ``abs``, patching ``math`` or returning a float subclass with odd dunders changes
    nothing, and neither the expected value nor the wrapper ever enters the sandbox. Forging a
    report (frames, ``sys.settrace``, writing to the report pipe) can only claim *values*, which
    pass only if they are what the parent expects;
  * statement tests (HumanEval ``check`` with loops) run in the worker, a process the candidate
    cannot reach (another uid, never forked from, no candidate code ever runs in it), with the real
    builtins and the problem's own code (helpers such as ``poly`` come from the prompt, never from
    the completion); each call of the candidate's function is a call into the sandbox with plain
    values that returns its plain result. The sandbox never sees the test code, and no verdict is
    decided in the candidate's process (``metadata["in_process_verdicts"]`` is 0). Stricter than
    running the test in-process: a result that is not plain data fails, arguments are copies, and
    an exception of the candidate is re-raised as the builtin of that name (never ``StopIteration``);
  * a test with no reported outcome (``sys.exit(0)``, ``os._exit(0)``, a crash, a kill) is not a
    pass; every report must carry the attempt's nonce and arrive in order; the harness binds what it
    calls (its codec, its JSON writer, builtins) before the program runs;
- **the machine** -- each run is its own session and process group inside the worker's PID
  namespace; after every attempt (in a ``finally``) the zygote, its PID 1, kills every other process
  in it, daemons included, and reaps them; ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_NPROC``
  (fork bombs, threads), ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, no core dumps; per-test and total
  wall-clock timeouts; stdout/stderr captured and capped (a flood is read and dropped, never
  buffered); a memory cgroup per worker bounds a run's total memory (all its processes and its work
  dir; ``total_memory_mb``), and an out-of-memory kill inside it is reported as ``memory_exceeded``;
- **other samples** -- every test process is forked from a clean zygote that has never seen a job
  (its program, tests, outputs or reference values), so a later sample's memory holds nothing of an
  earlier one; after every run the work dir is removed (replaced wholesale where removal fails) and
  the worker's SysV shared memory, semaphores and message queues are deleted (own IPC namespace);
- **one bad sample never breaks a run** -- every sample ends as exactly one classified result: a
  malformed report is a protocol violation (``runtime_error``), values that cannot be shown (huge
  ints) are shown by their size, an error of the machinery is ``sandbox_error`` for that sample
  only, and a worker that failed (or died) is replaced before its next job;
- **the host and this process** -- the code runs as a uid of its own (one per worker, from a random
  block no account uses; not root, no supplementary groups), so it cannot signal or ptrace the parent,
  the workers, or other runs, and ``RLIMIT_NPROC`` (per uid) stops a fork bomb although we are root;
- **the filesystem** -- a chroot jail whose only contents are read-only, nosuid bind mounts of the
  system directories and the Python standard library, ``/dev/{null,zero,random,urandom}``, and a fresh
  work dir (also ``HOME`` and ``TMPDIR``) on a size-limited, noexec tmpfs; home directories, the
  project, data sets, ``/proc`` and the host's ``/tmp`` are not there at all. Only the system's
  binary and library directories and this interpreter's own extension modules are executable in the
  jail, so no extension module of another Python copy (``/usr/lib/python3*``, site-/dist-packages)
  and no shared object the code writes can be loaded; ``_ctypes``, ``_cffi_backend`` and the C-API
  test modules are masked wherever they remain executable, so the code cannot read raw memory;
- **secrets and the network** -- the environment is replaced by four plain variables (workers are
  exec'd with a scrubbed environment, so no secret is even in their memory); a new network namespace
  has only a loopback device that is down: no connection anywhere, 127.0.0.1 included.

Determinism: every sandboxed interpreter uses string-hash seed 0, so the order of a set of strings
is the same in every worker (reference outputs and candidates' outputs are compared across workers).

What it does NOT protect against:

- inside a value test's hole that itself contains logic (a comprehension, ``f(x) or g(y)``), that
  logic runs in the sandbox, though its comparisons see plain values;
- a wrapper evaluated in the parent needs the whole value: a value beyond ``max_value_bytes`` (or
  one that is not plain data, e.g. an instance of the program's own class) fails the test, where
  Python would have compared it in-process; the test inputs are visible to the code, and a program
  that special-cases them passes;
- code can inspect live Python objects of its own process (its own job: program, holes, inputs);
- kernel exploits, side channels, and the CPU and memory bandwidth a run takes from its neighbours;
  without a memory cgroup (``isolation["memory_cgroup"]`` False: cgroup v2 without delegation, not
  root), one run's total memory is bounded only by ``max_processes x memory_mb``;
- there is no ``/proc`` and no ``/dev/shm`` in the jail: ``multiprocessing`` locks and pools fail;
  executables written to the work dir cannot run (noexec);
- where namespaces are unavailable (not root, restrictive containers): a warning
  (:class:`SandboxIsolationWarning`) and the result metadata say what is missing; without a PID
  namespace, daemons are killed by process group and by uid (only with a private uid, i.e. as root);
  without the jail, the code sees the host filesystem with its uid's permissions (extension modules
  included), its work dir is on the host's temp dir, and IPC objects are not cleaned without an IPC
  namespace; without root, it runs as your own user and can signal your processes.
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
    from rlaif.sandbox.cases import Job, Limits, TestCase
    from rlaif.sandbox.pool import SandboxIsolationWarning, SandboxPool, SandboxUnavailable
    from rlaif.sandbox.spec import assert_test, call_test, statement_test


def __getattr__(name: str):
    # Lazy on purpose: the worker process imports rlaif.sandbox.runner and must not pay for pydantic.
    if name in ("SandboxPool", "SandboxIsolationWarning", "SandboxUnavailable"):
        from rlaif.sandbox import pool

        return getattr(pool, name)
    if name in ("Job", "Limits", "TestCase"):
        from rlaif.sandbox import cases

        return getattr(cases, name)
    if name in ("assert_test", "call_test", "statement_test"):
        from rlaif.sandbox import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'rlaif.sandbox' has no attribute {name!r}")
