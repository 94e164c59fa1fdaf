"""rlaif.train.launch: stages under ``accelerate launch``, and the TRL stages' data parallelism is
correct - DPO and the reward model on 2 gloo processes give the weights of one process holding the
same global batch (per_device_train_batch_size halved, so every optimiser step sees the same pairs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlaif.train.launch import LaunchSettings, TrainLaunchError, launch_command, run_stage

ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def weights(folder: Path):
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, list(folder.iterdir())
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def assert_same(a: dict, b: dict, what: str, atol: float = 2e-5) -> None:
    import torch

    assert a.keys() == b.keys(), what
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < atol, (what, worst)
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)


def test_launch_command_passes_accelerate_configs_through(tmp_path):
    ds = tmp_path / "zero2.yaml"
    ds.write_text("distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: 2}\n")
    cmd = launch_command(
        "dpo", tmp_path / "dpo.yaml", LaunchSettings(num_processes=4, accelerate_config=str(ds))
    )
    assert cmd[cmd.index("--config_file") + 1] == str(ds) and cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[-6:] == ["-m", "rlaif.cli", "train", "dpo", "--config", str(tmp_path / "dpo.yaml")]
    cpu = launch_command("ppo", tmp_path / "p.yaml", LaunchSettings(num_processes=2, main_process_port=29999))
    assert "--multi_gpu" in cpu and cpu[cpu.index("--main_process_port") + 1] == "29999"
    assert not LaunchSettings().distributed and LaunchSettings(num_processes=2).distributed
    with pytest.raises(TrainLaunchError, match="accelerate_config: file not found"):
        launch_command(
            "dpo", tmp_path / "d.yaml", LaunchSettings(accelerate_config=str(tmp_path / "nope.yaml"))
        )
    with pytest.raises(TrainLaunchError, match="unknown training stage 'dpoo'"):
        launch_command("dpoo", tmp_path / "d.yaml", LaunchSettings())


@pytest.mark.slow  # two processes import torch and TRL before the stage fails (~1 min here)
def test_failed_launch_names_its_log(tiny_model_dir, tmp_path):
    from rlaif.train.configs import DPOConfig, PolicySpec

    cfg = DPOConfig(
        output_dir=tmp_path / "out",
        policy=PolicySpec(path=tiny_model_dir),
        pairs=[tmp_path / "missing.jsonl"],
    )
    with pytest.raises(
        TrainLaunchError, match=r"dpo under accelerate launch exited with 1 \(log: .*dpo.launch.log\)"
    ):
        run_stage("dpo", cfg, LaunchSettings(num_processes=2), tmp_path / "work", env=ENV)


@pytest.mark.slow
def test_dpo_two_processes_equal_one_process(tiny_model_dir, dpo_pairs_file, tmp_path):
    from rlaif.train.configs import DPOConfig, PolicySpec
    from rlaif.train.dpo import run_dpo

    common = {"policy": PolicySpec(path=tiny_model_dir), "pairs": [dpo_pairs_file], "learning_rate": 5e-3}
    one = run_dpo(DPOConfig(output_dir=tmp_path / "one", per_device_train_batch_size=4, **common))
    two = run_stage(
        "dpo", DPOConfig(output_dir=tmp_path / "two", per_device_train_batch_size=2, **common),
        LaunchSettings(num_processes=2), tmp_path / "work", env=ENV,
    )  # fmt: skip
    assert two.counts["world_size"] == 2 and one.counts["steps"] == two.counts["steps"] == 4
    assert_same(weights(one.adapter), weights(two.adapter), "dpo adapter")


@pytest.mark.slow
def test_reward_model_two_processes_equal_one_process(tiny_model_dir, rm_pairs_file, tmp_path):
    from rlaif.train.configs import RewardModelConfig
    from rlaif.train.reward_model import train_reward_model

    # 64 training pairs: a multiple of the global batch (8). Otherwise accelerate fills the last batch
    # of the shorter process with repeated pairs (even_batches), and that step differs from one process's
    common = {
        "model": tiny_model_dir,
        "pairs": [rm_pairs_file],
        "eval_pairs": [rm_pairs_file],
        "learning_rate": 3e-3,
    }
    one = train_reward_model(
        RewardModelConfig(output_dir=tmp_path / "one", per_device_train_batch_size=8, **common)
    )
    two = run_stage(
        "reward-model", RewardModelConfig(output_dir=tmp_path / "two", per_device_train_batch_size=4, **common),
        LaunchSettings(num_processes=2), tmp_path / "work", env=ENV,
    )  # fmt: skip
    assert one.counts["steps"] == two.counts["steps"] > 0
    # Adam turns float-order differences of near-zero gradients into ~5e-5 after 8 steps (the weights
    # move by ~1e-2); an uneven last batch gave 5e-4 and an unseeded score head 8e-2
    assert_same(weights(one.base_model), weights(two.base_model), "reward model", atol=1e-4)
