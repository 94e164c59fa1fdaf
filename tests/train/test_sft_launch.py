"""``rlaif train sft`` under ``accelerate launch --num_processes 2`` (gloo on CPU): the adapter of one
process holding the same global batch, and the pipeline's SFT stage goes through this same launch."""

from __future__ import annotations

import pytest

from rlaif.records import write_jsonl
from rlaif.train.configs import PolicySpec
from rlaif.train.launch import LaunchSettings, run_stage
from rlaif.train.sft import SFTConfig, run_sft

ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def _weights(folder):
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, list(folder.iterdir())
    return {k: v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.slow  # two processes import torch and TRL (~1 min here)
def test_sft_two_processes_equal_one_process(tiny_model_dir, tmp_path):
    from test_sft import records  # next to this test

    path = tmp_path / "sft.jsonl"
    write_jsonl(path, records(8))
    common = {
        "policy": PolicySpec(path=tiny_model_dir),
        "records": [path],
        "learning_rate": 5e-3,
        "max_steps": 2,
    }
    one = run_sft(SFTConfig(output_dir=tmp_path / "one", per_device_train_batch_size=4, **common))
    two = run_stage(
        "sft", SFTConfig(output_dir=tmp_path / "two", per_device_train_batch_size=2, **common),
        LaunchSettings(num_processes=2), tmp_path / "work", env=ENV,
    )  # fmt: skip
    assert two.counts["world_size"] == 2 and one.counts["steps"] == two.counts["steps"] == 2
    a, b = _weights(one.adapter), _weights(two.adapter)
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    moved = max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k)  # B starts at zero
    print(f"sft 2 vs 1 process: max |diff| {worst:.2e}, max |lora_B| {moved:.2e}")
    assert worst < 1e-4 and moved > 100 * worst, (worst, moved)
