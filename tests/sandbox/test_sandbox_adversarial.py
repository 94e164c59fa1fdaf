"""Adversarial programs, one property per test: the harness survives (the ``isolated`` fixture checks
that a trivial program still passes and that no sandboxed process is left afterwards) and the run is
classified correctly. Everything here runs for real in the sandbox.

Destructive attempts only ever target files these tests create themselves: if isolation were broken,
a test must fail, not damage the machine.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from sandbox_testlib import run, sandbox_processes

from rlaif.sandbox import Job, Limits, SandboxPool, assert_test, statement_test

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


def test_fork_bomb_is_contained(isolated):
    res = run(isolated, FORK_BOMB, "assert True", timeout_s=1.0, max_processes=16)
    assert res.status == "timeout"
    assert not res.passed
    assert sandbox_processes(isolated) == []


SPAWN_UNTIL_REFUSED = """
import os, time
def spawn():
    n = 0
    while n < 1000:
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    return n
"""


def test_process_limit_holds_although_we_are_root(isolated):
    # 16 processes for the sandbox uid: the test process itself and at most 15 children
    res = run(isolated, SPAWN_UNTIL_REFUSED, "assert spawn() == 15", max_processes=16)
    assert res.status == "passed", res.diagnostics


def test_memory_bomb_is_memory_exceeded(isolated):
    program = "def grab():\n    chunks = []\n    while True:\n        chunks.append(bytearray(50 * 2**20))\n"
    res = run(isolated, program, "assert grab() == 1", memory_mb=256)
    assert res.status == "memory_exceeded", res.diagnostics
    assert "MemoryError" in res.diagnostics


SPREAD_MEMORY = """
import os, time
def hog():
    for _ in range(3):
        if os.fork() == 0:
            block = bytearray(100 * 2**20)
            time.sleep(60)
            os._exit(0)
    chunks = []
    while True:
        chunks.append(bytearray(10 * 2**20))
"""


def _oom_kills(cgroup: str) -> int:
    for name in ("memory.oom_control", "memory.events"):
        path = os.path.join(cgroup, name)
        if os.path.exists(path):
            with open(path) as fh:
                return next(int(x.split()[1]) for x in fh if x.startswith("oom_kill "))
    raise AssertionError(f"no oom_kill counter in {cgroup}")


def test_memory_spread_over_processes_is_bounded_by_the_cgroup():
    # per process 300 MiB would allow 4 x 300; the run as a whole gets 400 MiB
    with SandboxPool(workers=1, total_memory_mb=400, limits=Limits(memory_mb=300, timeout_s=10)) as own:
        if not own.isolation.get("memory_cgroup"):
            pytest.skip("no memory cgroup on this machine: " + "; ".join(own.warnings))
        cgroup = own._workers[0].ready["cgroup"]
        before = _oom_kills(cgroup)
        res = run(own, SPREAD_MEMORY, "assert hog() == 1")
        assert res.status == "memory_exceeded", res.diagnostics
        assert _oom_kills(cgroup) > before  # the kernel enforced the run's total, inside its cgroup
        assert sandbox_processes(own) == []
        assert run(own, "x = 1\n", "assert x == 1").status == "passed"


def test_infinite_loop_times_out_and_later_tests_still_run(isolated):
    program = "def f(x):\n    if x == 0:\n        while True:\n            pass\n    return x\n"
    res = run(isolated, program, "assert f(0) == 0", "assert f(2) == 2", timeout_s=1.0)
    assert res.status == "timeout"
    assert res.per_test == ["timeout", "passed"]
    assert res.tests_passed == 1


def test_output_flood_is_capped(isolated):
    program = "def f():\n    while True:\n        print('x' * 1000)\n"
    res = run(isolated, program, "assert f() == 1", timeout_s=1.0, output_bytes=4096)
    assert res.status == "timeout"
    assert len(res.stdout.encode()) <= 4096
    assert res.metadata["stdout_bytes"] > 4096


def test_writing_outside_the_work_dir_fails(isolated, tmp_path):
    open_dir = tmp_path / "world_writable"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # only the jail, not permissions, stands between the code and this dir
    marker = f"rlaif_escape_{uuid.uuid4().hex}"
    targets = [str(open_dir / marker), f"/tmp/{marker}", f"../{marker}", f"/{marker}"]
    program = (
        "import os\n"
        "def attempts(paths):\n"
        "    done = []\n"
        "    for p in paths:\n"
        "        try:\n"
        "            with open(p, 'w') as fh:\n"
        "                fh.write('escaped')\n"
        "            done.append(p)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return done\n"
        "def write_here():\n"
        "    with open('inside.txt', 'w') as fh:\n"
        "        fh.write('ok')\n"
        "    return open('inside.txt').read()\n"
    )
    res = run(isolated, program, f"assert attempts({targets!r}) == []", "assert write_here() == 'ok'")
    assert res.status == "passed", res.diagnostics
    assert not (open_dir / marker).exists()
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/{marker}")


def test_deleting_host_files_fails(isolated, tmp_path):
    victim_dir = tmp_path / "victims"
    victim_dir.mkdir()
    victim_dir.chmod(0o777)
    victim = victim_dir / "keep_me.txt"
    victim.write_text("precious")
    victim.chmod(0o666)
    program = (
        "import os, shutil\n"
        "def wipe(path, folder):\n"
        "    for action in (lambda: os.remove(path), lambda: shutil.rmtree(folder)):\n"
        "        try:\n"
        "            action()\n"
        "            return 'deleted'\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'refused'\n"
    )
    res = run(isolated, program, f"assert wipe({str(victim)!r}, {str(victim_dir)!r}) == 'refused'")
    assert res.status == "passed", res.diagnostics
    assert victim.read_text() == "precious"


def test_environment_secret_is_not_readable(monkeypatch):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("RLAIF_SANDBOX_TEST_SECRET", secret)
    program = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for path in ('/proc/self/environ', '/proc/1/environ', '/proc/%d/environ' % os.getppid()):\n"
        "    try:\n"
        "        print(open(path, 'rb').read())\n"
        "    except OSError as exc:\n"
        "        print('no', path, exc)\n"
        "def env():\n"
        "    return sorted(os.environ)\n"
    )
    with SandboxPool(workers=1) as own_pool:  # started after the secret was set
        res = run(own_pool, program, "assert env() == ['HOME', 'LANG', 'PATH', 'TMPDIR']")
    assert res.status == "passed", res.diagnostics
    assert "PATH" in res.stdout
    assert secret not in res.stdout and secret not in res.stderr


def test_socket_to_loopback_listener_fails(isolated):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    program = (
        "import socket\n"
        "def connect(port):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=1).close()\n"
        "        return 'connected'\n"
        "    except OSError:\n"
        "        return 'failed'\n"
    )
    try:
        res = run(isolated, program, f"assert connect({port}) == 'failed'")
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
    assert res.status == "passed", res.diagnostics
    assert res.network_isolated is True


def test_killing_the_parent_fails(isolated):
    workers = [w.proc.pid for w in isolated._workers]
    targets = [os.getpid(), *workers]
    program = (
        "import os, signal\n"
        "def strike(pids):\n"
        "    hit = []\n"
        "    for pid in pids + [os.getppid(), 1]:\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n"
        "            hit.append(pid)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return hit\n"
    )
    res = run(isolated, program, f"assert strike({targets!r}) == []")
    assert res.status == "passed", res.diagnostics
    assert all(w.proc.poll() is None for w in isolated._workers)
    assert [w.proc.pid for w in isolated._workers] == workers  # no worker had to be replaced


def test_early_sys_exit_is_not_a_pass(isolated):
    res = run(isolated, "import sys\nsys.exit(0)\ndef f():\n    return 1\n", "assert f() == 1")
    assert res.status == "runtime_error"
    assert not res.passed and res.tests_passed == 0


def test_os_exit_during_a_test_is_not_a_pass(isolated):
    program = "import os\ndef f():\n    os._exit(0)\n"
    res = run(isolated, program, "assert f() == 1", "assert f() is None")
    assert res.per_test == ["runtime_error", "runtime_error"]
    assert "exited (status 0)" in res.diagnostics
    assert not res.passed


def test_object_that_equals_everything_does_not_pass(isolated):
    program = (
        "class Anything:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "class Int(int):\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "def f(x):\n"
        "    return Anything()\n"
        "def g(x):\n"
        "    return Int(0)\n"
    )
    res = run(isolated, program, "assert f(1) == 2", "assert g(1) == 2")
    assert res.per_test == ["failed", "failed"]
    assert not res.passed


def test_redefining_assert_machinery_and_builtins_does_not_pass(isolated):
    program = (
        "import builtins, sys\n"
        "builtins.AssertionError = KeyError\n"
        "builtins.exec = lambda *a, **k: None\n"
        "builtins.eval = lambda *a, **k: 2\n"
        "harness = sys.modules['rlaif.sandbox.harness']\n"
        "harness.encode = lambda value, **k: 2\n"
        'harness.dumps = lambda obj: \'{"e": "ok"}\'\n'
        "def check(candidate):\n"
        "    pass\n"
        "def f(x):\n"
        "    return 0\n"
    )
    job = Job(
        program=program,
        tests=[
            assert_test("assert f(1) == 2"),
            statement_test("for i in range(3):\n    assert f(i) == i + 1\n"),
        ],
    )
    res = isolated.run_one(job)
    assert res.per_test == ["failed", "failed"], res.diagnostics
    assert not res.passed


def test_forged_report_message_is_rejected(isolated):
    program = (
        "import os\n"
        "def f():\n"
        "    for fd in range(3, 20):\n"
        "        try:\n"
        '            os.write(fd, b\'{"e": "ok", "i": 0}\\n{"e": "done"}\\n\')\n'
        "        except OSError:\n"
        "            pass\n"
        "    return 0\n"
    )
    job = Job(program=program, tests=[statement_test("f()\nassert False\n")])
    res = isolated.run_one(job)
    assert res.status == "runtime_error"
    assert "protocol violated" in res.diagnostics
    assert not res.passed


def test_deep_recursion_is_a_runtime_error(isolated):
    res = run(isolated, "def f(n):\n    return f(n + 1)\n", "assert f(0) == 1")
    assert res.status == "runtime_error"
    assert "RecursionError" in res.diagnostics


def test_stack_overflow_crash_is_recorded_and_later_tests_still_run(isolated):
    # recursion through a C function (map) uses the C stack: with the limit lifted, it overflows
    program = "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return next(map(f, [n + 1])) if n >= 0 else 0\n"
    res = run(isolated, program, "assert f(0) == 1", "assert f(-1) == 0")
    assert res.per_test == ["runtime_error", "passed"]
    assert "SIGSEGV" in res.diagnostics


def test_background_processes_do_not_outlive_the_run(isolated):
    program = (
        "import os, subprocess, time\n"
        "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        "def f():\n"
        "    return 1\n"
    )
    res = run(isolated, program, "assert f() == 1")
    assert res.status == "passed", res.diagnostics
    assert sandbox_processes(isolated) == []


def test_busy_threads_do_not_block_or_outlive_the_run(isolated):
    program = (
        "import threading\n"
        "def spin():\n"
        "    while True:\n"
        "        pass\n"
        "for _ in range(4):\n"
        "    threading.Thread(target=spin).start()\n"
        "def f(x):\n"
        "    return x + 1\n"
    )
    res = run(isolated, program, "assert f(1) == 2", "assert f(2) == 3")
    assert res.status == "passed", res.diagnostics
    assert sandbox_processes(isolated) == []


def test_thread_exiting_the_process_mid_test_is_not_a_pass(isolated):
    program = (
        "import os, threading, time\n"
        "def f():\n"
        "    threading.Timer(0.2, lambda: os._exit(0)).start()\n"
        "    time.sleep(2)\n"
        "    return 1\n"
    )
    res = run(isolated, program, "assert f() == 1")
    assert res.status == "runtime_error"
    assert not res.passed


def test_limits_are_per_run_not_per_pool(isolated):
    # a tight limit on one run does not leak into the next one (run by the healthy check)
    program = "x = bytearray(64 * 2**20)\ndef last():\n    return x[-1]\n"
    res = run(isolated, program, "assert last() == 0", memory_mb=48)
    assert res.status == "memory_exceeded"
    big = run(isolated, program, "assert last() == 0", memory_mb=512)
    assert big.status == "passed"


@pytest.mark.parametrize("limits", [Limits(timeout_s=0.5)])
def test_sleeping_program_times_out_while_loading(isolated, limits):
    res = isolated.run_one(
        Job(program="import time\ntime.sleep(30)\n", tests=[assert_test("assert True")]), limits=limits
    )
    assert res.status == "timeout"
    assert "loading" in res.diagnostics
