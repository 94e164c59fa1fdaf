"""Two-process data parallelism: a DPO run under ``accelerate launch`` (gloo on CPU) writes one model.

On a CPU-only machine ``accelerate launch --cpu`` starts a single process unless MPI is set up, so the
test uses ``--multi_gpu``: with no CUDA device accelerate falls back to torch.distributed with the
gloo backend on CPU, one process per rank.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import yaml

from rlaif.train.common import read_metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dpo_two_processes_with_accelerate(tiny_model_dir, dpo_pairs_file, tmp_path):
    out = tmp_path / "ddp"
    config = tmp_path / "dpo.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(out),
                "policy": {"path": str(tiny_model_dir)},
                "pairs": [str(dpo_pairs_file)],
                "learning_rate": 5e-3,
                "per_device_train_batch_size": 2,
            }
        )
    )
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "rlaif.cli", "train", "dpo", "--config", str(config), "--set", "beta=0.2",
    ]  # fmt: skip
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    result = json.loads((out / "result.json").read_text())
    assert result["counts"]["world_size"] == 2
    # 16 pairs, 2 per process, 2 processes -> 4 optimiser steps (a single process would take 8)
    assert result["counts"]["steps"] == 4
    assert result["extra"]["beta"] == 0.2
    # one model, written once
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "metrics.jsonl", "result.json"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    steps = [m["step"] for m in read_metrics(out / "metrics.jsonl") if "loss" in m]
    assert steps == [1, 2, 3, 4]  # logged by rank 0 only
    assert proc.stdout.count('"stage": "dpo"') == 1  # the result is printed once
