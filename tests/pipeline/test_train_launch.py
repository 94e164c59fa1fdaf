"""The run's ``train:`` block: checked up front, and a DPO round under ``accelerate launch`` with two
gloo processes gives the adapter of one process holding the same global batch."""

from __future__ import annotations

import json

import pytest
import yaml

from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError
from rlaif.pipeline.compile import compile_run


def test_train_block_errors_are_one_line(run_config, tmp_path):
    path = tmp_path / "run.yaml"
    data = run_config().model_dump(mode="json")
    data["train"] = {"num_processes": 0}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    message = str(info.value)
    assert "train.num_processes" in message and str(path) in message and "\n" not in message


def test_missing_accelerate_config_and_a_launched_judge_reward_are_refused(run_config, tmp_path):
    missing = tmp_path / "zero2.yaml"
    with pytest.raises(ConfigError, match="'train.accelerate_config': file not found: .*zero2.yaml"):
        compile_run(run_config(train={"accelerate_config": str(missing)}))
    missing.write_text("distributed_type: DEEPSPEED\n")
    assert compile_run(run_config(train={"accelerate_config": str(missing)})).config.train.distributed
    final = {"kind": "ppo", "reward": "judge"}
    with pytest.raises(
        ConfigError, match="'train': a final ppo round with a judge reward runs in one process"
    ):
        compile_run(run_config(train={"num_processes": 2}, final=final))
    compile_run(run_config(final=final))  # one process: the final round is allowed
    # a reward model crosses the process boundary as a path: every process loads it
    compile_run(run_config(train={"num_processes": 2}, final={"kind": "grpo", "reward": "reward_model"}))


def _weights(folder):
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, list(folder.iterdir())
    return {k: v for f in files for k, v in load_file(str(f)).items()}


def _round_config(tmp_path, model, shared) -> dict:
    questions = str(shared / "mt-bench" / "question.jsonl")
    return {
        "name": "launched",
        "seed": 5,
        "output_dir": str(tmp_path / "runs"),
        "policy": {"path": str(model)},
        "prompts": {"kind": "mtbench", "path": questions, "limit": 8},
        "feedback": {
            "source": "rlcd",
            "chunk_size": 8,
            "options": {"affixes": "rlcd_helpful", "sampling": {"max_tokens": 12}, "max_retries": 1},
        },
        "pairs": {"options": {"min_margin": None}},
        "rounds": 1,
        # per process: 2 processes x 1 pair = the global batch of 2 the 1-process reference takes
        "dpo": {
            "max_steps": 2,
            "per_device_train_batch_size": 1,
            "learning_rate": 5e-3,
            "lora": {"r": 8, "alpha": 16},
            "max_length": 256,
        },
        "train": {"num_processes": 2},
        "health": {"max_judge_invalid_rate": None, "min_pairs": 0},
        "eval": {"win_rate_limit": 0, "max_tokens": 4},
    }


@pytest.mark.slow  # two processes import torch and TRL (~1-2 min on 2 cores)
def test_a_round_trained_by_two_processes_matches_one_process(
    tmp_path, tiny_model_dir, vllm_engine, shared_data, monkeypatch
):
    from rlaif.pipeline.runner import Runner
    from rlaif.records import PreferencePair, read_jsonl
    from rlaif.train.configs import DPOConfig
    from rlaif.train.dpo import run_dpo

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the launched processes join over gloo on the CPU
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_round_config(tmp_path, tiny_model_dir, shared_data)))
    cfg = load_run_config(path)
    runner = Runner(cfg, engine=vllm_engine)
    runner.run()
    stage = cfg.run_dir() / "round_1" / "train"
    assert "round_1/eval" in runner.executed  # the run went on to the end, serving the adapter
    pairs = read_jsonl(cfg.run_dir() / "round_1" / "pairs" / "pairs.jsonl", PreferencePair)
    assert len(pairs) >= 4, "the equivalence needs two full global batches"
    summary = json.loads((stage / "manifest.json").read_text())["summary"]
    assert summary["counts"]["world_size"] == 2 and summary["counts"]["steps"] == 2
    log = (stage / "dpo.launch.log").read_text()
    assert log.strip(), "the launched processes wrote nothing"

    # one process, the same stage config, the whole global batch per step
    data = yaml.safe_load((stage / "dpo.launch.yaml").read_text())
    one = run_dpo(
        DPOConfig(**{**data, "output_dir": str(tmp_path / "one"), "per_device_train_batch_size": 2})
    )
    assert one.counts["world_size"] == 1 and one.counts["steps"] == 2
    a, b = _weights(stage / "adapter"), _weights(one.adapter)
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    moved = max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k)  # B starts at zero
    print(f"2 vs 1 process: max |diff| {worst:.2e}, max |lora_B| {moved:.2e}")
    # Adam turns float-order differences of the all-reduced gradients into ~3e-5 after 2 steps here
    assert worst < 1e-4 and moved > 100 * worst, (worst, moved)


@pytest.mark.slow  # three launches of two processes each (~2 min here, ~6 min on a loaded machine)
def test_a_reward_model_final_round_runs_on_two_processes(
    tmp_path, tiny_model_dir, vllm_engine, shared_data, monkeypatch
):
    from rlaif.pipeline.runner import Runner

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = _round_config(tmp_path, tiny_model_dir, shared_data)
    data["dpo"]["max_steps"] = 1
    ppo = {"max_steps": 1, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "max_completion_length": 8}
    data["final"] = {"kind": "ppo", "reward": "reward_model", "options": ppo}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_run_config(path)
    runner = Runner(cfg, engine=vllm_engine)
    runner.run()
    assert "final/eval" in runner.executed
    stage = cfg.run_dir() / "final" / "train"
    # the reward model and PPO each ran as `rlaif train ...` in two processes, from their YAML configs
    for name in ("reward-model", "ppo"):
        assert (stage / f"{name}.launch.yaml").is_file() and (stage / f"{name}.launch.log").is_file()
    rm = json.loads((stage / "reward_model" / "result.json").read_text())
    assert rm["counts"]["world_size"] == 2
    summary = json.loads((stage / "manifest.json").read_text())["summary"]
    assert summary["counts"]["world_size"] == 2 and summary["reward_model"]["train_pairs"] > 0
    launched = yaml.safe_load((stage / "ppo.launch.yaml").read_text())
    assert launched["reward"]["reward_model"] == (rm["merged_model"] or rm["base_model"])
    assert (stage / "adapter" / "adapter_config.json").is_file()
