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
