"""A SIGKILLed owner leaves no vLLM process behind (real engine on the tiny model, real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_KV_CACHE_BYTES = 256 << 20

OWNER = """
import sys, time
from rlaif.engines.vllm import VLLMEngine
from rlaif.engines.base import Sampling
if __name__ == "__main__":
    engine = VLLMEngine(sys.argv[1], max_model_len=512, kv_cache_memory_bytes=int(sys.argv[2]),
                        enforce_eager=True, progress=False)
    engine.generate(["hello"], Sampling(max_tokens=2))
    print("ready", flush=True)
    time.sleep(600)
"""


def _alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {p.name()}")
        except psutil.Error:
            pass
    return out


@pytest.mark.slow  # its own engine process (~30 s loaded); the default suite SIGKILLs real owners of the
# same VLLMEngine (and its watchdog) and checks no engine process survives: test_run_lock.py's first
# run (EngineCore up, then SIGKILL) and tests/train/test_pipeline_train_resume.py's killed run
def test_engine_processes_die_with_a_sigkilled_owner(tiny_model_dir: Path, tmp_path: Path):
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    owner = subprocess.Popen(
        [sys.executable, str(script), str(tiny_model_dir), str(TEST_KV_CACHE_BYTES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )
    tree: list[psutil.Process] = []
    try:
        lines = iter(owner.stdout.readline, "")  # vLLM logs on stdout too
        assert any(line.strip() == "ready" for line in lines), "the engine did not start"
        tree = psutil.Process(owner.pid).children(recursive=True)
        names = set()
        for p in tree:
            try:
                names.add(p.name())
            except psutil.Error:
                pass
        assert "VLLM::EngineCore" in names, names  # the processes the watchdog must stop are there
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 8
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive(tree) == [], "engine processes outlived their SIGKILLed owner"
    finally:
        for p in tree:
            try:
                p.kill()
            except psutil.Error:
                pass
        if owner.poll() is None:
            owner.kill()


TWO_ENGINES = """
import sys
import psutil
from rlaif.engines.vllm import VLLMEngine
from rlaif.engines.base import Sampling

def trackers():
    return [p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" in " ".join(p.cmdline())]

def segments(engine):
    return {m.path for p in engine._processes for m in p.memory_maps() if m.path.startswith("/dev/shm/")}

if __name__ == "__main__":
    args = dict(max_model_len=512, kv_cache_memory_bytes=int(sys.argv[2]), enforce_eager=True, progress=False)
    policy, judge = VLLMEngine(sys.argv[1], **args), VLLMEngine(sys.argv[1], **args)
    for engine in (policy, judge):
        engine.generate(["hello"], Sampling(max_tokens=2))
    print("segments", *sorted(segments(policy) | segments(judge)), flush=True)
    before = trackers()
    policy.close()
    print("trackers", before, trackers(), flush=True)
    judge.close()
    print("closed", flush=True)
"""


def test_closing_one_of_two_engines_leaves_the_shared_resource_tracker_running(tiny_model_dir, tmp_path):
    """A policy and a judge engine in one process, as in a run with its own judge model: the process's
    multiprocessing resource tracker is not one engine's process. Stopped with the first engine, it
    lost its records, and closing the second printed a KeyError traceback per shared-memory segment."""
    script = tmp_path / "two_engines.py"
    script.write_text(TWO_ENGINES)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir), str(TEST_KV_CACHE_BYTES)],
        capture_output=True, env=env, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("trackers")]
    before, after = line.removeprefix("trackers ").split("] [")
    assert before.strip("[") and before.strip("[") == after.strip("]"), line  # one tracker, still running
    assert "closed" in done.stdout
    assert "KeyError" not in done.stderr and "resource_tracker" not in done.stderr, done.stderr[-3000:]
    # the engines' shared-memory segments are removed (by vLLM, or by the tracker at exit), not leaked
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("segments")]
    segments = line.split()[1:]
    assert segments, "the engines mapped no shared memory: nothing was checked"
    deadline = time.monotonic() + 10
    while any(Path(s).exists() for s in segments) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [s for s in segments if Path(s).exists()] == []
