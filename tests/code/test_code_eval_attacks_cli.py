"""``rlaif eval-code`` as a real subprocess, with ONE worker, over attacks interleaved with honest
samples: it must exit 0, write exactly one result per sample (in order), pass no attack, and pass
every honest sample, each of which runs right after an attack on the same worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBLEM = {
    "task_id": 1,
    "text": "Write a function that squares a number.",
    "code": "def square(x):\n    return x * x\n",
    "test_setup_code": "",
    "test_list": [
        "assert square(3) == 9",
        "assert abs(square(0.5) - 0.25) < 1e-9",
        "assert square(-2) == 4",
    ],
    "challenge_test_list": [],
}
HONEST = "def square(x):\n    return x * x\n"

ATTACKS = {
    "forged ok through the frames": """
import sys
def square(x):
    frame = sys._getframe(1)
    while frame is not None and "send" not in frame.f_locals:
        frame = frame.f_back
    frame.f_locals["send"]({"e": "ok", "i": frame.f_locals["i"]})
    return 0
""",
    "trace hook rewriting the outcome": """
import sys
def _hook(frame, event, arg):
    loc = frame.f_locals
    if frame.f_code.co_name == "run_in_child" and isinstance(loc.get("outcome"), dict):
        loc["outcome"] = {"e": "ok", "i": loc["i"]}
    return _hook
def square(x):
    sys._getframe(1).f_back.f_trace = _hook
    sys.settrace(_hook)
    return 0
""",
    "patched json and builtins": """
import json, builtins
json.dumps = lambda *a, **k: '{"e": "ok"}'
builtins.abs = lambda x: 0.0
builtins.isinstance = lambda *a: True
def square(x):
    return 1
""",
    "lying float": """
class Liar(float):
    def __eq__(self, other): return True
    def __sub__(self, other): return Liar(0.0)
    def __abs__(self): return 0.0
    def __lt__(self, other): return True
    __hash__ = float.__hash__
def square(x):
    return Liar(7.0)
""",
    "huge int": "def square(x):\n    return 1 << 20000\n",
    "3000 nested directories": """
import os
for _ in range(3000):
    os.mkdir("d")
    os.chdir("d")
def square(x):
    return 0
""",
    "deeply nested report and a daemon": """
import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(300)
os.write(3, b"[" * 400000 + b"\\n")
def square(x):
    return 0
""",
    "ctypes from another copy": """
import glob
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_file_location
loaded = []
for path in glob.glob("/usr/lib/python3*/**/_c*.so", recursive=True):
    try:
        spec = spec_from_file_location("_ctypes", path, loader=ExtensionFileLoader("_ctypes", path))
        module_from_spec(spec)
        loaded.append(path)
    except BaseException:
        pass
def square(x):
    return len(loaded)
""",
    "early exit": "import os\nos._exit(0)\ndef square(x):\n    return x * x\n",
    "self kill": "import os, signal\ndef square(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
}


@pytest.mark.timeout(300)
def test_attacks_and_honest_samples_with_one_worker(tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps(PROBLEM) + "\n")
    rows, kinds = [], []
    for name, program in ATTACKS.items():
        rows += [{"task_id": 1, "completion": program}, {"task_id": 1, "completion": HONEST}]
        kinds += [name, "honest"]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rlaif.cli", "eval-code", "--problems", str(problems), "--samples", str(samples),
           "--workers", "1", "--no-progress", "--k", "1", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == len(rows)
    assert [r["sample_index"] for r in results] == list(range(len(rows)))
    by_kind = list(zip(kinds, results, strict=True))
    passed_attacks = [k for k, r in by_kind if k != "honest" and r["passed"]]
    assert passed_attacks == []
    failed_honest = [(kinds[i - 1], r["status"], r["diagnostics"]) for i, (k, r) in enumerate(by_kind)
                     if k == "honest" and not r["passed"]]  # fmt: skip
    assert failed_honest == []
    assert all(r["status"] != "sandbox_error" for r in results), [r["diagnostics"] for r in results]
    summary = json.loads(proc.stdout)
    assert summary["samples"] == len(rows) and summary["status_counts"]["passed"] == len(ATTACKS)
