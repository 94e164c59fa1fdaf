"""Kernel-side attacks, mounted for real from tools in the jail (perl, strace, util-linux): keyrings
as a channel between samples, SysV shared memory, io_uring, ptrace, new namespaces, signals to the
zygote, the x32 system-call ABI; and memory left in the work dir. Each one passes as root and as an
unprivileged user (test_sandbox_unprivileged.py runs this file again under a fresh uid).

Every attack also runs as a control outside the sandbox where that is harmless (a process keyring,
which dies with its process), so a test cannot pass because the attack itself was written wrong.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sandbox_testlib import assert_healthy, run

from rlaif.sandbox import Job, Limits, SandboxPool, assert_test
from rlaif.sandbox.seccomp import program, unavailable

# perl's syscall() needs writable strings (variables), so every argument is one
PERL = """
import subprocess
def perl(code):
    done = subprocess.run(["perl", "-e", code], capture_output=True, text=True, timeout=10)
    return (done.stdout + done.stderr).strip()
"""
ADD_KEY = 'my ($t, $d, $p) = ("user", "{name}", "{secret}"); my $r = syscall(248, $t, $d, $p, length($p), {ring}); print "$r $!"'
FIND_KEY = 'my ($t, $d) = ("user", "{name}"); my $r = syscall(250, 10, -4, $t, $d, 0); print "$r $!"'  # KEYCTL_SEARCH
SHM_GRAB = 'my $id = shmget(0, {mb} << 20, 0600); print defined($id) ? "id $id" : "denied $!"'


@pytest.fixture
def filtered(isolated):
    if not isolated.isolation.get("seccomp"):
        pytest.skip("no seccomp filter on this machine: " + (unavailable() or "see the pool's warnings"))
    if shutil.which("perl") is None:
        pytest.skip("no perl on this machine")
    return isolated


def _perl_here(code: str) -> str:
    done = subprocess.run(["perl", "-e", code], capture_output=True, text=True, timeout=10)
    return (done.stdout + done.stderr).strip()


def test_a_key_stored_by_one_sample_never_reaches_the_next(filtered):
    name, secret = f"rlaif-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    control = _perl_here(ADD_KEY.format(name=name, secret=secret, ring=-2))  # process keyring: dies with perl
    assert int(control.split()[0]) > 0, control  # the attack works where nothing stops it
    for ring in (-4, -3):  # the user keyring outlives the pool; the session keyring the run
        store = run(
            filtered, PERL, f"assert perl({ADD_KEY.format(name=name, secret=secret, ring=ring)!r}) == ''"
        )
        assert "-1 Operation not permitted" in store.diagnostics, store.diagnostics
    find = run(filtered, PERL, f"assert perl({FIND_KEY.format(name=name)!r}) == ''")
    assert "-1 Operation not permitted" in find.diagnostics, find.diagnostics


def test_sysv_shared_memory_is_denied_and_the_sample_keeps_its_own_verdict(filtered):
    program_ = PERL + "def f(x):\n    return x * 2\n"
    res = run(
        filtered,
        program_,
        f"assert perl({SHM_GRAB.format(mb=300)!r}) == ''",
        "assert f(2) == 4",
        "assert f(2) == 5",
    )
    assert res.per_test == ["failed", "passed", "failed"], res.diagnostics
    assert "denied Operation not permitted" in res.diagnostics
    again = run(filtered, program_, "assert f(3) == 6")  # and nothing is left to starve the next run
    assert again.status == "passed", again.diagnostics


IO_URING_AND_FRIENDS = {
    # io_uring_setup(8, params): a second system-call interface seccomp cannot look into
    "io_uring": 'my $p = "\\0" x 120; my $r = syscall(425, 8, $p); print "$r $!"',
    "ptrace": 'my $r = syscall(101, 0, 0, 0, 0); print "$r $!"',  # PTRACE_TRACEME
    "x32 ABI": 'my $r = syscall(0x40000000 + 39); print "$r $!"',  # getpid through the x32 numbers
    "kill the zygote": 'my $r = kill("KILL", 1); print "$r $!"',
    # a POSIX message queue would outlive the run in the worker's IPC namespace (outside: ENOENT)
    "mq_open": 'my $n = "rlaif-probe-queue"; my $r = syscall(240, $n, 0, 0, 0); print "$r $!"',
    "bpf": 'my $a = "\\0" x 64; my $r = syscall(321, 0, $a, 64); print "$r $!"',
}


@pytest.mark.parametrize("attack", sorted(IO_URING_AND_FRIENDS))
def test_kernel_interfaces_the_code_never_needs_are_closed(filtered, attack):
    code = IO_URING_AND_FRIENDS[attack]
    res = run(filtered, PERL, f"assert perl({code!r}) == ''")
    assert "Operation not permitted" in res.diagnostics.split("got ", 1)[-1], res.diagnostics


def test_new_namespaces_and_tracers_fail_inside_the_jail(filtered):
    tools = [t for t in ("unshare", "strace") if shutil.which(t)]
    if not tools:
        pytest.skip("neither unshare nor strace on this machine")
    program_ = (
        "import subprocess\n"
        "def tool(argv):\n"
        "    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)\n"
        "    return done.returncode, 'Operation not permitted' in done.stderr\n"
    )
    cmds = {"unshare": ["unshare", "-Urn", "true"], "strace": ["strace", "-f", "true"]}
    tests = [f"assert tool({cmds[t]!r}) == (0, False)" for t in tools]
    res = run(filtered, program_, *tests)
    # each ran and was refused by the kernel: a non-zero exit with EPERM in its message
    assert res.per_test == ["failed"] * len(tools), res.diagnostics
    assert [f["detail"] for f in res.metadata["failures"]] == ["expected == (0, False), got (1, True)"] * len(
        tools
    )


def test_the_filter_checks_the_architecture_before_anything_else():
    insns = program()
    first = [int.from_bytes(insns[i : i + 2], "little") for i in range(0, 24, 8)]
    assert first == [0x20, 0x15, 0x06]  # load arch, compare with x86_64, else kill


FILL = """
import os
def fill(mb):
    for i in range(mb):
        with open(f"ballast{i}", "wb") as fh:
            fh.write(b"x" * (1 << 20))
    return mb
def crash():
    os._exit(3)
def f():
    return 1
"""


def test_memory_left_in_the_work_dir_is_the_samples_failure_not_the_sandboxs():
    limits = Limits(tmp_mb=400, memory_mb=300, timeout_s=10)
    with SandboxPool(workers=1, total_memory_mb=220, limits=limits) as own:
        if not own.isolation.get("memory_cgroup"):
            pytest.skip("no memory cgroup (needs root): " + "; ".join(own.warnings))
        tests = ["assert fill(215) == 215", "assert crash()", "assert f() == 1", "assert f() == 2"]
        res = own.run_one(Job(program=FILL, tests=[assert_test(t) for t in tests]))
        assert res.per_test == ["memory_exceeded", "runtime_error", "passed", "failed"], res.diagnostics
        assert res.status != "sandbox_error"
        assert_healthy(own)


@pytest.mark.parametrize("attack", sorted(set(IO_URING_AND_FRIENDS) - {"kill the zygote"}))
def test_each_attack_is_real_outside_the_sandbox(attack):
    """The control: the same perl line, run here, is not refused (so the test above can fail)."""
    if shutil.which("perl") is None:
        pytest.skip("no perl on this machine")
    outside = _perl_here(IO_URING_AND_FRIENDS[attack])
    assert "Operation not permitted" not in outside, outside


CAPABILITY_PROBES = """
import os, socket
def probes():
    refused = []
    for name, attempt in (
        ("sethostname", lambda: socket.sethostname("owned")),  # CAP_SYS_ADMIN over the UTS namespace
        ("setuid 0", lambda: os.setuid(0)),
        ("chown to root", lambda: os.chown(".", 0, 0)),  # CAP_CHOWN
        ("mknod", lambda: os.mknod("null2", 0o20666, os.makedev(1, 3))),  # CAP_MKNOD
    ):
        try:
            attempt()
        except OSError:
            refused.append(name)
    return refused
"""


def test_the_code_holds_no_capability_even_over_its_own_namespaces(isolated):
    res = run(
        isolated,
        CAPABILITY_PROBES,
        "assert probes() == ['sethostname', 'setuid 0', 'chown to root', 'mknod']",
    )
    assert res.status == "passed", res.diagnostics


def test_without_a_memory_cgroup_the_sandbox_is_the_oom_killers_first_choice(isolated):
    if isolated.isolation.get("memory_cgroup") or not isolated.isolation.get("userns"):
        pytest.skip("as root each test process raises its own score (before its chroot)")
    for worker in isolated._workers:
        pid = worker.proc.pid
        zygote = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0]
        assert Path(f"/proc/{zygote}/oom_score_adj").read_text().strip() == "1000"


REPLACE_WORK_DIR = """
import os
def replace():
    done = []
    os.chdir("/")
    for name, attempt in (
        ("rename", lambda: os.rename("/tmp/run", "/tmp/gone")),
        ("rmdir", lambda: os.rmdir("/tmp/run")),
        ("beside", lambda: open("/tmp/left-for-later", "w").close()),
        ("chmod", lambda: os.chmod("/tmp", 0o777)),
    ):
        try:
            attempt()
            done.append(name)
        except OSError:
            pass
    return done
"""


def test_the_work_dir_cannot_be_replaced_nor_anything_left_beside_it(isolated):
    # as root /tmp belongs to root; without root the code owns it, and Landlock is what stops it
    # (chmod is not a write Landlock handles, and /tmp's mode is reset after every run)
    res = run(isolated, REPLACE_WORK_DIR, "assert replace() in ([], ['chmod'])")
    assert res.status == "passed", res.diagnostics
    later = run(
        isolated, "import os\ndef f():\n    return sorted(os.listdir('/tmp'))\n", "assert f() == ['run']"
    )
    assert later.status == "passed", later.diagnostics
