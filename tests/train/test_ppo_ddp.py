"""PPO under ``accelerate launch --num_processes 2`` (gloo on CPU) gives the weights of one process
holding the same global batch: gradients all-reduced with token-share weighting, advantages whitened
and reward moments kept over the global batch, the adaptive KL controller fed the global KL.

The rollouts are fixed per prompt (ppo_ddp_worker.py says why); everything after them runs for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif.engines.serve import free_port

WORKER = Path(__file__).with_name("ppo_ddp_worker.py")
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def accelerate_cmd(processes: int) -> list[str]:
    """``accelerate launch`` with N gloo processes on CPU (``--multi_gpu`` with no CUDA device falls
    back to torch.distributed on CPU; ``--cpu`` would start one process without MPI)."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
    ]  # fmt: skip


def state(path: Path):
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: dict, b: dict, what: str) -> None:
    import torch

    assert a.keys() == b.keys(), what
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=2e-5) for k in a), (what, worst)


@pytest.mark.slow  # ~75 s here: one process, then two under accelerate launch
def test_ppo_two_processes_equal_one_process_on_the_global_batch(tiny_model_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run = subprocess.run(
        [sys.executable, str(WORKER), str(tiny_model_dir), str(one), "8"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    run = subprocess.run(
        [*accelerate_cmd(2), str(WORKER), str(tiny_model_dir), str(two), "4"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((two / "result.json").read_text())["counts"]["world_size"] == 2

    start = state(tiny_model_dir / "model.safetensors")
    actor_one, actor_two = (
        state(one / "model" / "model.safetensors"),
        state(two / "model" / "model.safetensors"),
    )
    # the runs trained (the comparison is not between two untouched copies) ...
    assert any(not (actor_one[k] == start[k]).all() for k in start)
    # ... and agree to float tolerance, for the actor, the critic and the adaptive KL coefficient
    assert_same_weights(actor_one, actor_two, "actor")
    critic = sorted(p.name for p in (one / "critic").glob("*.safetensors"))
    assert critic, list((one / "critic").iterdir())
    for name in critic:
        assert_same_weights(state(one / "critic" / name), state(two / "critic" / name), f"critic {name}")
    kl_one = json.loads((one / "kl_coef.json").read_text())["kl_coef"]
    kl_two = json.loads((two / "kl_coef.json").read_text())["kl_coef"]
    assert kl_one != 0.1 and kl_one == pytest.approx(kl_two, rel=1e-5)
