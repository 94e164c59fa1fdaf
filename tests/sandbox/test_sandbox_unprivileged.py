"""The sandbox without root, for real: the adversarial suites run again under a fresh, unused uid
(the sandbox then builds everything inside a user namespace), and ``rlaif eval-code`` refuses to run
samples where no namespace can be made.

How the fresh uid is reached (the tests need root to set it up): a private mount namespace where the
interpreter's installation is made reachable (it may lie under a directory only root may enter, such
as ``/root``), then ``setpriv`` to a uid no account uses, with a ``HOME`` of its own. "No namespaces"
is simulated honestly: the command runs under the sandbox's own seccomp filter
(:mod:`rlaif.sandbox.seccomp`), which refuses ``unshare`` with EPERM exactly as a kernel with
unprivileged user namespaces switched off does (Debian's ``kernel.unprivileged_userns_clone=0``).
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rlaif.sandbox.policy import ENV_VAR, opted_out, refusal

REPO = Path(__file__).resolve().parents[2]
# The suites whose attacks must be contained alike with and without root.
SUITES = [
    "test_sandbox_adversarial.py",
    "test_sandbox_seccomp.py",
    "test_sandbox_run_isolation.py",
    "test_sandbox_forgery.py",
    "test_sandbox_bound_names.py",
    "test_sandbox_humaneval.py",
    "test_sandbox_value_tests_worker.py",
    "test_sandbox_sample_faults.py",
]
TOOLS = ("unshare", "setpriv", "mount", "mktemp")


def _fresh_uid() -> int:
    while True:
        uid = random.randrange(1 << 30, (1 << 31) - 1)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid


def _hidden_top(path: str) -> str | None:
    """The first directory above ``path`` that other users may not enter (None: all may)."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        top = os.path.join(*parts[:i])
        if os.path.isdir(top) and not os.stat(top).st_mode & 0o001:
            return top
    return None


def _as_fresh_user(
    argv: list[str], home: str, uid: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``uid`` (not root, no groups) with the interpreter reachable and this
    worktree importable; returns the finished process (stdout and stderr captured)."""
    prefix = os.path.realpath(sys.base_prefix)
    hidden = _hidden_top(prefix)
    steps = ["set -e", "mount --make-rprivate /"]
    if hidden:  # bind the installation aside, cover its hidden parent with an open tmpfs, bind it back
        steps += [
            "T=$(mktemp -d)",
            f"mount --bind {shlex.quote(prefix)} $T",
            f"mount -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(hidden)}",
            f"mkdir -p {shlex.quote(prefix)}",
            f"mount --bind $T {shlex.quote(prefix)}",
        ]
    steps.append(f"exec setpriv --reuid={uid} --regid={uid} --clear-groups -- " + shlex.join(argv))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", "\n".join(steps)],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def fresh_user():
    """(uid, its own temporary directory) -- or a skip saying what this machine lacks."""
    if os.geteuid() != 0:
        pytest.skip("switching to a fresh uid needs root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (util-linux)")
    for path in (sys.prefix, str(REPO)):
        if _hidden_top(path):
            pytest.skip(f"{path} is not reachable by other users")
    uid = _fresh_uid()
    home = tempfile.mkdtemp(prefix="rlaif-unpriv-")
    os.chown(home, uid, uid)
    probe = _as_fresh_user(["unshare", "-U", "true"], home, uid)
    if probe.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"unprivileged user namespaces are unavailable here: {probe.stderr.strip()}")
    yield uid, home
    shutil.rmtree(home, ignore_errors=True)


def _outcomes(junit: str) -> dict[str, tuple[str, str]]:
    """test id -> (passed / skipped / failed, message) from a JUnit XML report."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kind, message = "passed", ""
        for child in case:
            if child.tag in ("skipped", "failure", "error"):
                kind = "skipped" if child.tag == "skipped" else "failed"
                message = child.get("message", "")
        out[test_id] = (kind, message)
    return out


def _collected(files: list[str]) -> list[str]:
    """The test ids pytest collects from ``files`` here (as root): the attacks of the root run."""
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), timeout=120, check=True)
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_adversarial_suites_contain_the_same_attacks_without_root(fresh_user):
    uid, home = fresh_user
    junit = os.path.join(home, "junit.xml")
    files = [str(REPO / "tests" / "sandbox" / name) for name in SUITES]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    done = _as_fresh_user(argv + ["--basetemp", os.path.join(home, "tmp"), *files], home, uid)
    outcomes = _outcomes(junit)
    assert len(outcomes) == len(_collected(files)), done.stdout[-3000:] + done.stderr[-3000:]
    failed = {k: m for k, (kind, m) in outcomes.items() if kind == "failed"}
    assert not failed, failed
    # the only attacks not tried without root are those that need a memory cgroup (see the
    # package docstring); everything else ran, isolated in a user namespace, and was contained
    skipped = {k: m for k, (kind, m) in outcomes.items() if kind == "skipped"}
    assert all("memory cgroup" in m for m in skipped.values()), skipped
    assert len(skipped) <= 4, skipped
    assert "user namespace" in done.stdout + done.stderr  # the pool said how it isolated the code


def _mini_samples(home: str) -> tuple[str, str]:
    from rlaif.code.problems import load_problems

    assets = REPO / "tests" / "code" / "assets" / "humaneval_mini.jsonl"
    problems = shutil.copy(assets, os.path.join(home, "problems.jsonl"))
    rows = [{"task_id": p.task_id, "completion": p.reference_solution} for p in load_problems(assets)]
    samples = os.path.join(home, "samples.jsonl")
    Path(samples).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return problems, samples


NO_USERNS = (
    "import os, sys; from rlaif.sandbox import seccomp; seccomp.install(); "
    "os.execv(sys.executable, [sys.executable, '-m', 'rlaif.cli', *sys.argv[1:]])"
)


def test_eval_code_refuses_without_namespaces_unless_told_otherwise(fresh_user):
    uid, home = fresh_user
    problems, samples = _mini_samples(home)
    out = os.path.join(home, "results.jsonl")
    cmd = [sys.executable, "-c", NO_USERNS, "eval-code", "--problems", problems, "--samples", samples]
    cmd += ["--k", "1", "--no-progress", "--workers", "1", "--out", out]
    refused = _as_fresh_user(cmd, home, uid)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "refuses to run untrusted code" in lines[0] and "no user namespace" in lines[0], lines[0]
    assert "Operation not permitted" in lines[0] and "--unsafe-no-isolation" in lines[0]
    assert not os.path.exists(out)
    ran = _as_fresh_user(cmd + ["--unsafe-no-isolation"], home, uid)  # the explicit opt-out
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["pass@1"] == 1.0
    assert not summary["isolation"]["userns"] and not summary["isolation"]["uid_drop"]
    assert os.path.exists(out)
    os.unlink(out)
    isolated = _as_fresh_user(cmd[:1] + ["-m", "rlaif.cli"] + cmd[3:], home, uid)  # namespaces allowed
    assert isolated.returncode == 0, isolated.stderr
    summary = json.loads(isolated.stdout)
    assert summary["pass@1"] == 1.0 and os.path.exists(out)
    assert summary["isolation"]["userns"] and summary["isolation"]["filesystem"], summary["isolation"]


def test_the_isolation_option_decides_where_nothing_isolates(fresh_user):
    """``--isolation none`` is the opt-out; ``--isolation required`` refuses even where the environment
    variable opts out; the environment variable alone still opts out."""
    uid, home = fresh_user
    problems, samples = _mini_samples(home)
    out = os.path.join(home, "results.jsonl")
    cmd = [sys.executable, "-c", NO_USERNS, "eval-code", "--problems", problems, "--samples", samples]
    cmd += ["--k", "1", "--no-progress", "--workers", "1", "--out", out]
    ran = _as_fresh_user(cmd + ["--isolation", "none"], home, uid)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["pass@1"] == 1.0 and os.path.exists(out)
    os.unlink(out)
    refused = _as_fresh_user(cmd + ["--isolation", "required"], home, uid, env={ENV_VAR: "none"})
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "refuses to run untrusted code" in refused.stderr and not os.path.exists(out)
    by_env = _as_fresh_user(cmd, home, uid, env={ENV_VAR: "none"})
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["pass@1"] == 1.0


# -- the refusal's logic (plain dicts; the real path is the eval-code test above) ---------------------
FULL = {"uid_drop": False, "userns": True, "filesystem": True, "pid_namespace": True, "network": True}


def test_a_user_namespace_counts_only_with_the_jail_pid_and_network_namespaces_in_it():
    assert refusal(FULL, []) is None
    assert refusal({**FULL, "uid_drop": True, "userns": False, "network": False}, []) is None  # root
    warning = "no filesystem jail ([Errno 1] mount /tmp/j: Operation not permitted): sandboxed code sees"
    why = refusal({**FULL, "filesystem": False, "network": False}, ["other", warning])
    assert "could not provide filesystem, network" in why and "mount /tmp/j: Operation not permitted" in why
    nothing = refusal({**FULL, "userns": False}, ["no user namespace ([Errno 1] unshare: EPERM): ..."])
    assert "no user namespace ([Errno 1] unshare: EPERM)" in nothing and "--unsafe-no-isolation" in nothing


def test_the_opt_out_is_explicit(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert not opted_out(None) and opted_out(True) and not opted_out(False)
    monkeypatch.setenv(ENV_VAR, "none")
    assert opted_out(None) and not opted_out(False)
    monkeypatch.setenv(ENV_VAR, "full")
    assert not opted_out(None)
