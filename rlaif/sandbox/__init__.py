"""Run untrusted generated code against tests, locally, safely enough, and fast.

Usage::

    from rlaif.sandbox import SandboxPool, Job, assert_test
    with SandboxPool(workers=2) as pool:
        [res] = pool.run([Job(program="def f(x): return x + 1", tests=[assert_test("assert f(1) == 2")])])
        res.status, res.tests_passed   # ('passed', 1)

What it protects against (on Linux, as root or -- see *Without root* -- inside a user namespace,
where every mechanism below is available; the pool's ``isolation`` dict and every result's
``metadata["isolation"]`` / ``network_isolated`` say which are):

- **forged passes** -- the sandbox never decides a verdict; the worker and the parent judge every
  test from plain values the sandbox reports (builtin types only, read with the base types' own
  methods: an object whose ``__eq__`` always returns True is compared by its real contents, or is
  not plain data and fails). Forging a report (frames, ``gc``, ``sys.settrace``, writing to the
  report socket) can only claim what the candidate's calls returned:

  * test code -- every ``assert`` line (MBPP) and every statement test (HumanEval ``check`` with
    loops) -- runs in the worker, a process the candidate cannot reach (another uid, never forked
    from, no candidate code ever runs in it), with the real builtins, real standard modules and the
    problem's own code (helpers such as ``poly`` come from the prompt, never from the completion).
    Only the candidate's own calls run in the sandbox: each is a call with plain values that returns
    its plain result (and nothing else). So the expected side, builtins applied to constants,
    comprehensions, ``or``, ``map`` and every comparison are evaluated where patching, frames, ``gc``
    or a lying ``__eq__`` cannot reach; the sandbox never sees the test code, and no verdict is
    decided in the candidate's process (``metadata["in_process_verdicts"]`` is 0). Objects of the
    candidate's own classes stay in the sandbox as handles: they can be passed back to its calls
    (``longest([Pair(1, 5)])``), and any other use fails the test. The worker's work per test is
    bounded in time (the per-test timeout) and memory (``memory_mb`` on top of its own), and
    counted against the sample;
  * MBPP+ input/output pairs (call tests): the call runs in the sandbox, its plain result is
    compared here with EvalPlus's rule, which never raises (a huge int is not close to a float; an
    expected infinity matches only itself);
  * a test with no reported outcome (``sys.exit(0)``, ``os._exit(0)``, a crash, a kill) is not a
    pass; every report must carry the attempt's nonce and arrive in order; the harness binds what it
    calls (its codec, its JSON writer, builtins) before the program runs;
- **the machine** -- each run is its own process group (no controlling terminal) inside the worker's PID
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
  only, and a worker that failed (or died) is replaced before its next job. Whatever a sample
  causes is its own failure, never ``sandbox_error``: comparing what it returned never raises, a
  set or dict whose keys hash alike is refused in linear time before it is built (hash flooding),
  and every text it reports (exception messages, output) is made UTF-8 encodable at the source, so
  a lone surrogate cannot stop results from being written;
- **the host and this process** -- as root the code runs as a uid of its own (one per worker, from a
  random block no account uses; not root, no supplementary groups), so it cannot signal or ptrace
  the parent, the workers, or other runs, and ``RLIMIT_NPROC`` (per uid) stops a fork bomb although
  we are root; without root, see *Without root* below;
- **the kernel's wider interfaces** -- a seccomp filter (:mod:`rlaif.sandbox.seccomp`; a deny-list,
  justified there) is installed in the zygote before it execs, so every sandboxed process and every
  program it runs inherits it: kernel keyrings (a channel between samples that outlives the pool),
  SysV IPC (shared memory outlives its processes and fills the run's memory cgroup), ``io_uring``,
  ``ptrace`` and cross-process memory calls, new namespaces and every mount call, ``bpf``,
  ``perf_event_open``, ``userfaultfd``, module loading, signals to the zygote, and any non-native
  ABI (x32, ``int 0x80``) fail. The jail keeps the system's tools (perl, a shell, gcc, gdb, strace):
  what made them dangerous is the system calls they reach, which the filter closes for every binary
  alike (removing tools one by one would miss the next one, and Python itself reaches most of the
  same calls); gdb and strace cannot trace (no ``ptrace``), and what gcc builds cannot run (the work
  dir is noexec);
- **the filesystem** -- a jail whose only contents are read-only, nosuid bind mounts of the
  system directories and the Python standard library, ``/dev/{null,zero,random,urandom}``, and a
  fresh work dir (also ``HOME`` and ``TMPDIR``) on a size-limited, noexec tmpfs; home directories,
  the project, data sets, ``/proc`` and the host's ``/tmp`` are not there at all (as root each test
  process ``chroot`` s into it; without root the zygote ``pivot_root`` s into it and the host's root
  is detached). Only the system's
  binary and library directories and this interpreter's own extension modules are executable in the
  jail, so no extension module of another Python copy (``/usr/lib/python3*``, site-/dist-packages)
  and no shared object the code writes can be loaded; ``_ctypes``, ``_cffi_backend`` and the C-API
  test modules are masked wherever they remain executable, so the code cannot read raw memory;
- **secrets and the network** -- the environment is replaced by four plain variables (workers are
  exec'd with a scrubbed environment, so no secret is even in their memory); a new network namespace
  has only a loopback device that is down: no connection anywhere, 127.0.0.1 included.

Without root (:mod:`rlaif.sandbox.userns`), where the kernel allows unprivileged user namespaces
(most current distributions; Slurm, Kubernetes pods, shared workstations), each worker builds the
same network, IPC/UTS, mount and PID namespaces inside a user namespace of its own that maps only
your uid; the zygote enters the jail with ``pivot_root`` (the host's root is not even in its mount
table), execs without any capability, under ``no_new_privs``, the seccomp filter (which also denies
``chroot``) and a Landlock domain (:mod:`rlaif.sandbox.landlock`) that allows writing only in the
work dir. The same adversarial suites pass both ways (``tests/sandbox/test_sandbox_unprivileged.py``
runs them under a fresh uid). What differs without root:

- there is no memory cgroup (unless one is delegated to you): one run's memory is bounded by
  ``max_processes x memory_mb`` and the work dir's size, not by ``total_memory_mb``, and an
  out-of-memory kill by the kernel is not told from another ``SIGKILL``;
- the code runs as your own uid (seen from outside) and the work tmpfs belongs to it: the PID
  namespace (it sees no process outside its run), the seccomp filter (no ``ptrace``, no signals to
  the zygote) and Landlock keep it from your processes and from writing outside its work dir, not
  file permissions; without Landlock (Linux < 5.13) the whole work tmpfs is emptied after every run;
- ``RLIMIT_NPROC`` counts the worker and the zygote too (they share the uid in the namespace); the
  limit is raised by two to match;
- the ``rlaif`` package (its source only) is bound read-only into the jail, for the zygote.

Where no isolation is possible at all (not root and no user namespace, or namespaces disabled
without root) the pool refuses to start with one line naming what is missing
(:mod:`rlaif.sandbox.policy`), unless the user opts out explicitly: ``allow_unisolated=True``,
``rlaif eval-code --isolation none`` (or ``--unsafe-no-isolation``), ``sandbox.isolation: none`` in a
run config, or ``RLAIF_SANDBOX_ISOLATION=none`` in the environment (``required`` refuses whatever the
environment says).

Determinism: every sandboxed interpreter uses string-hash seed 0, so the order of a set of strings
is the same in every worker (reference outputs and candidates' outputs are compared across workers).

What it does NOT protect against:

- stricter than Python in-process: a test needs the candidate's whole result as plain data, so a
  result beyond ``max_value_bytes`` or one that is not plain data (an instance of the program's own
  class) fails where Python would have compared it; arguments are copies (a test cannot see the
  candidate mutate them); an exception of the candidate is re-raised in the test as the builtin of
  that name (else ``CandidateError``; never ``StopIteration``); a module the test names without
  importing it is the worker's, not the one the program imported. The test inputs are visible to
  the code, and a program that special-cases them passes;
- code can inspect live Python objects of its own process (its own job: program, holes, inputs);
- test code is trusted: it runs in the worker, outside the jail, as the worker's user (root where
  the sandbox runs as root). A data set whose tests evaluate the candidate's output as code
  (``eval``, ``exec``, ``pickle.loads``) would run that output there; HumanEval, MBPP and MBPP+
  tests never do;
- kernel exploits through the system calls the filter allows, side channels, and the CPU and memory
  bandwidth a run takes from its neighbours; the seccomp filter only on x86_64 (elsewhere
  ``isolation["seccomp"]`` is False and a warning says so); without a memory cgroup
  (``isolation["memory_cgroup"]`` False: not root, cgroup v2 without delegation), one run's total
  memory is bounded only by ``max_processes x memory_mb``;
- there is no ``/proc`` and no ``/dev/shm`` in the jail: ``multiprocessing`` locks and pools fail;
  executables written to the work dir cannot run (noexec);
- where some namespaces are unavailable (restrictive containers): a warning
  (:class:`SandboxIsolationWarning`) and the result metadata say what is missing; without a PID
  namespace, daemons are killed by process group and by uid (only with a private uid, i.e. as root);
  without the jail, the code sees the host filesystem with its uid's permissions (extension modules
  included), its work dir is on the host's temp dir, and IPC objects are not cleaned without an IPC
  namespace. With the explicit opt-out above (no root, no user namespace), the code runs as your own
  user and can signal your processes and read your files: never do that on a machine you care about.
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
