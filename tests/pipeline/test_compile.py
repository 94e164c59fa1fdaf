"""compile_run: every cross-field rule checked before any stage runs, by the CLI and Runner alike."""

from __future__ import annotations

import json

import pytest

from rlaif.errors import ConfigError
from rlaif.pipeline.compile import compile_run
from rlaif.pipeline.engines import max_lora_rank
from rlaif.pipeline.runner import Runner


def refused(cfg, *needles: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_run(cfg)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    # the Python API refuses it too, before any stage (nothing is written)
    with pytest.raises(ConfigError):
        Runner(cfg)
    assert not cfg.run_dir().exists()


def test_a_sandbox_reward_on_text_prompts_is_refused(run_config):
    refused(run_config(final={"kind": "grpo", "reward": "sandbox"}), "'final.reward'", "jsonl text prompts")
    compile_run(run_config(final={"kind": "grpo", "reward": "judge"}))


def test_a_verifier_reward_needs_prompts_a_verifier_can_check(run_config, tmp_path):
    verifier = {"kind": "grpo", "reward": "verifier"}
    refused(run_config(final=verifier), "'final.reward'", "2 of 2 prompts list no instructions (first: p0)")
    listed = tmp_path / "listed.jsonl"
    rows = [{"id": "i0", "prompt": "Say hi.", "instructions": [{"kind": "lowercase", "value": None}]}]
    listed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = compile_run(run_config(final=verifier, prompts={"path": str(listed)}))
    assert plan.config.final.reward == "verifier"
    bad_map = run_config(final={**verifier, "reward_kind": "pass"}, prompts={"path": str(listed)})
    refused(bad_map, "'final.reward_kind'", "unknown verifier reward 'pass'")
    guarded = compile_run(
        run_config(final={**verifier, "require_answer": True}, prompts={"path": str(listed)})
    )
    assert guarded.config.final.require_answer is True
    judged = run_config(final={"kind": "grpo", "reward": "judge", "require_answer": True})
    refused(judged, "'final.require_answer'", "final.reward=verifier on instruction prompts", "is judge")


def test_engine_rollouts_in_a_run_are_refused(run_config):
    cfg = run_config(final={"kind": "ppo", "reward": "judge", "options": {"rollout": "engine"}})
    refused(cfg, "'final.options.rollout'", "rollout: hf")
    compile_run(run_config(final={"kind": "ppo", "reward": "judge", "options": {"rollout": "hf"}}))


def test_an_openai_engine_with_lora_rounds_is_refused(run_config):
    openai = {"kind": "openai", "url": "http://127.0.0.1:9/v1"}
    refused(run_config(engine=openai), "'engine.kind'", "LoRA adapters")
    # no training on adapters: the server can generate the feedback and the evaluation
    compile_run(run_config(engine=openai, rounds=0))


def test_a_bad_rl_cai_clamp_is_refused_before_the_first_chunk(run_config):
    cfg = run_config(feedback={"source": "rl_cai", "options": {"clamp": [0.6, 0.4]}})
    refused(cfg, "'feedback.options'", "clamp must satisfy")
    compile_run(run_config(feedback={"source": "rl_cai", "options": {"clamp": [0.2, 0.8]}}))


def test_the_plan_carries_the_largest_lora_rank_the_engine_must_serve(run_config, tmp_path):
    assert compile_run(run_config()).lora_rank == 8  # DPO's default rank
    assert compile_run(run_config(dpo={"lora": {"r": 32}})).lora_rank == 32
    final = {"kind": "grpo", "reward": "judge", "options": {"lora": {"r": 64}}}
    assert compile_run(run_config(final=final)).lora_rank == 64
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 48}))
    assert compile_run(run_config(policy={"adapter": str(adapter)})).lora_rank == 48
    assert compile_run(run_config(dpo={"lora": None}, rounds=1)).lora_rank is None
    assert max_lora_rank(8) == 16 and max_lora_rank(32) == 32 and max_lora_rank(None) == 16


def test_the_runner_reads_the_data_files_up_front(run_config, tmp_path):
    refused(run_config(prompts={"path": str(tmp_path / "missing.jsonl")}), "'prompts.path': file not found")
