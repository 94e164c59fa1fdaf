"""Attacks on the runs around a sample, mounted for real: raw-memory extension modules from other
copies on the machine, memory and IPC objects left for later samples, and samples built to break
the worker (huge ints, deep directory trees, malformed reports, dead workers)."""

from __future__ import annotations

import glob
import os
import signal
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest
from sandbox_testlib import assert_healthy, run, sandbox_processes

from rlaif.sandbox import Job, Limits, SandboxPool, assert_test
from rlaif.sandbox.spec import value_test

RAW_MEMORY_MODULES = ("_ctypes", "_cffi_backend", "_testcapi", "_testinternalcapi")


def _extension_copies() -> list[tuple[str, str]]:
    """(module name, file) for every copy of a raw-memory extension module an attacker could find."""
    tops = glob.glob("/usr/lib/python3*") + glob.glob("/usr/local/lib/python3*")
    tops += [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platlib"]]
    found = set()
    for top in tops:
        for root, _dirs, files in os.walk(top):
            for name in files:
                stem = name.split(".", 1)[0]
                if stem in RAW_MEMORY_MODULES and ".so" in name:
                    found.add((stem, os.path.join(root, name)))
    return sorted(found)


LOADER = """
import os, shutil
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_file_location

def _load(name, path):
    spec = spec_from_file_location(name, path, loader=ExtensionFileLoader(name, path))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def attack(copies):
    loaded = []
    for name, path in copies:
        for where in (path, os.path.join(os.getcwd(), os.path.basename(path))):
            try:
                if where != path:
                    shutil.copyfile(path, where)  # a copy of our own, in the writable work dir
                _load(name, where)
                loaded.append(where)
            except BaseException:
                pass
    return loaded

def honest():
    import _json, _bisect, zlib
    return zlib.decompress(zlib.compress(b"ok"))
"""


def test_raw_memory_extensions_cannot_be_loaded_from_any_copy(isolated):
    copies = _extension_copies()
    if not copies:
        pytest.skip("no copy of a raw-memory extension module on this machine")
    res = run(isolated, LOADER, f"assert attack({copies!r}) == []", "assert honest() == b'ok'")
    assert res.per_test == ["passed", "passed"], res.diagnostics


SECRET_HOLDER = """
def f():
    return ["RLAIF" + "MARK" + "{token}" + str(i) for i in range(500)]
"""
# Reads its own process's memory the way an attacker with ctypes would: write(2) from any address into
# a pipe fails with EFAULT instead of crashing on unmapped ones (process_vm_readv, which would do the
# same, is denied by the seccomp filter), so it sweeps the address space around the
# heap and the allocator's arenas for what an earlier owner of that memory left behind.
MEMORY_READER = """
import ctypes, os

def tokens():
    marker = ("RLAIF" + "MARK").encode()
    mine = ["RLAIF" + "MARK" + "{token}" + "+" * 300 + str(i) for i in range(500)]
    del mine  # freed memory: the sweep must find these (it proves the sweep reads old memory)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sbrk.restype = ctypes.c_void_p
    chunk = 1 << 16
    pipe_r, pipe_w = os.pipe()
    os.set_blocking(pipe_w, False)
    found = set()
    for centre in (id(object()), libc.sbrk(0), id(marker)):
        start = max(chunk, (centre - (512 << 20)) & ~(chunk - 1))
        for addr in range(start, centre + (512 << 20), chunk):
            n = libc.write(pipe_w, ctypes.c_void_p(addr), chunk)
            if n <= 0:
                continue
            data = b""
            while len(data) < n:
                data += os.read(pipe_r, n - len(data))
            at = data.find(marker)
            while at >= 0:
                found.add(data[at + 9 : at + 41].decode("ascii", "replace"))
                at = data.find(marker, at + 1)
    return sorted(found)
"""


def _copies_in_memory(pid: int, token: str) -> int:
    count = 0
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if "r" not in perms:
                continue
            lo, hi = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(lo)
                count += mem.read(hi - lo).count(token.encode())
            except (OSError, OverflowError, ValueError):
                continue
    return count


def test_a_later_sample_cannot_read_an_earlier_samples_memory():
    # ctypes left loadable on purpose: the attacker reads raw memory, so only a clean parent helps
    with SandboxPool(workers=1, mask_extensions=False) as own:
        if not own.isolation.get("filesystem"):
            pytest.skip("no jail on this machine")
        earlier, later = uuid.uuid4().hex, uuid.uuid4().hex
        first = run(own, SECRET_HOLDER.format(token=earlier), "assert f() == []")
        assert first.status == "failed", first.diagnostics  # its 500 tokens went through the worker
        # the image every test process is forked from holds nothing of it (read from outside)
        assert _copies_in_memory(_zygote_pid(own._workers[0].proc.pid), earlier) == 0
        assert _copies_in_memory(own._workers[0].proc.pid, earlier) > 0  # the worker saw it
        probe = Job(program=MEMORY_READER.format(token=later), tests=[value_test("assert tokens() == []")])
        raw = own.run_raw([probe])[0]
        seen = raw["tests"][0]["v"][0]
        assert later in seen  # the scan works: it finds the reader's own token
        assert earlier not in seen  # ... and nothing of the earlier sample


SHM_HOG = """
import ctypes
IPC_PRIVATE, IPC_CREAT = 0, 0o1000
def grab(mb):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shmid = libc.shmget(IPC_PRIVATE, mb << 20, IPC_CREAT | 0o600)
    addr = libc.shmat(shmid, None, 0)
    ctypes.memset(addr, 1, mb << 20)  # touch every page: charged to the run's memory
    libc.shmdt(ctypes.c_void_p(addr))
    return shmid
"""
SHM_PROBE = """
import ctypes
def attach(shmid):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    return libc.shmat(shmid, None, 0) in (None, 2**64 - 1)
def use(mb):
    return len(bytearray(mb << 20))
"""


def test_ipc_objects_do_not_outlive_the_run():
    limits = Limits(memory_mb=600, timeout_s=20)
    with SandboxPool(workers=1, mask_extensions=False, total_memory_mb=450, limits=limits) as own:
        if not (own.isolation.get("memory_cgroup") and own.isolation.get("ipc")):
            pytest.skip("needs a memory cgroup and an IPC namespace: " + "; ".join(own.warnings))
        if own.isolation.get("seccomp"):  # the first line of defence: test_sandbox_seccomp.py
            pytest.skip("SysV IPC is denied by the seccomp filter; this tests the cleanup behind it")
        hog = own.run_raw([Job(program=SHM_HOG, tests=[value_test("assert grab(200) > 0")])])[0]
        shmid = hog["tests"][0]["v"][0]
        assert type(shmid) is int and shmid >= 0, hog
        res = run(own, SHM_PROBE, f"assert attach({shmid})", "assert use(250) == 250 << 20")
        assert res.per_test == ["passed", "passed"], res.diagnostics


# -- 6. one sample never breaks the run -----------------------------------------------------------------
def test_huge_int_results_are_judged_and_shown(isolated):
    program = "def f():\n    return 1 << 20000\ndef g():\n    return [1 << 20000]\n"
    res = run(isolated, program, "assert f() == 1", "assert g() == [1]", "assert f() == 1 << 20000")
    assert res.per_test == ["failed", "failed", "passed"], res.diagnostics
    assert "<int of 20001 bits>" in res.diagnostics


DEEP_TREE = """
import os
for _ in range(3000):
    os.mkdir("d")
    os.chdir("d")
def f():
    return 1
"""


def test_thousands_of_nested_directories_do_not_break_the_worker(isolated):
    workers = [w.proc.pid for w in isolated._workers]
    for _ in range(2):  # the same worker serves both (two workers, two rounds each)
        res = run(isolated, DEEP_TREE, "assert f() == 1", timeout_s=10)
        assert res.status == "passed", res.diagnostics
    assert [w.proc.pid for w in isolated._workers] == workers


DEEP_REPORT = """
import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(300)
    os._exit(0)
os.write(3, b"[" * 500_000 + b"\\n")
time.sleep(300)
def f():
    return 1
"""


def test_malformed_deeply_nested_report_is_a_violation_and_nothing_survives(isolated):
    res = run(isolated, DEEP_REPORT, "assert f() == 1")
    assert res.status == "runtime_error" and "malformed report" in res.diagnostics, res.diagnostics
    assert sandbox_processes(isolated) == []


def _zygote_pid(worker_pid: int) -> int:
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    return int(children[0])


def test_a_dead_worker_or_zygote_costs_one_classified_result_and_is_replaced():
    honest = Job(program="def f(x):\n    return x + 1\n", tests=[assert_test("assert f(1) == 2")])
    with SandboxPool(workers=1) as own:
        if sys.platform != "linux":
            pytest.skip("needs /proc")
        os.kill(_zygote_pid(own._workers[0].proc.pid), signal.SIGKILL)
        statuses = [r.status for r in own.run([honest, honest])]
        assert statuses == ["sandbox_error", "passed"]
        os.kill(own._workers[0].proc.pid, signal.SIGKILL)
        own._workers[0].proc.wait()
        results = own.run([honest, honest, honest])
        assert [r.status for r in results] == ["sandbox_error", "passed", "passed"]
        assert_healthy(own)


SESSION_PROBE = """
import os
def probe():
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
        tty = "opened"
    except OSError as exc:
        tty = type(exc).__name__
    return [os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid(), tty]
"""


def test_the_test_process_leads_its_own_group_but_no_session_and_has_no_terminal(pool):
    """Its own process group (what the sweep kills without a PID namespace), not a session of its own
    (which only cost time): outside any session leader's reach, it can never get a controlling tty."""
    res = run(pool, SESSION_PROBE, "assert probe()[:2] == [True, False]", "assert probe()[2] != 'opened'")
    assert res.status == "passed", res.diagnostics
