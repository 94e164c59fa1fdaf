"""An SFT stage on the tiny model for real (TRL SFTTrainer + PEFT LoRA): the completions' likelihood
rises and the adapter has a shape vLLM serves."""

from __future__ import annotations

import json
import statistics

import pytest

from rlaif.errors import ConfigError
from rlaif.feedback.result import SFTRecord
from rlaif.records import Message, PreferencePair, write_jsonl
from rlaif.train.common import read_metrics
from rlaif.train.configs import PolicySpec
from rlaif.train.dpo import pair_logps
from rlaif.train.models import load_policy, load_tokenizer
from rlaif.train.sft import SFTConfig, run_sft, sft_rows


def records(n: int = 8) -> list[SFTRecord]:
    return [
        SFTRecord(
            id=f"sft-{i}",
            prompt=[Message(role="user", content=f"Please revise answer number {i}.")],
            completion="I am sorry, I cannot help with that, but here is a safer idea.",
            source="sl_cai",
        )
        for i in range(n)
    ]


def completion_logp(policy: PolicySpec, tokenizer, rows: list[SFTRecord]) -> float:
    """Mean summed log-prob of each record's completion (scored as a pair's chosen side)."""
    pairs = [
        PreferencePair(id=r.id, prompt=r.prompt, chosen=r.completion, rejected="x", source="t") for r in rows
    ]
    return statistics.mean(c for c, _ in pair_logps(load_policy(policy), tokenizer, pairs))


def test_sft_raises_the_completions_likelihood_with_a_servable_adapter(tiny_model_dir, tmp_path):
    data = records()
    path = tmp_path / "sft.jsonl"
    write_jsonl(path, data)
    cfg = SFTConfig(
        output_dir=tmp_path / "out",
        policy=PolicySpec(path=tiny_model_dir),
        records=[path],
        learning_rate=5e-3,
        max_steps=6,
        per_device_train_batch_size=4,
    )
    result = run_sft(cfg)
    tok = load_tokenizer(tiny_model_dir)
    before = completion_logp(PolicySpec(path=tiny_model_dir), tok, data)
    after = completion_logp(result.policy, tok, data)
    print(f"SFT completion logp: before {before:.2f}, after {after:.2f}")
    assert after > before + 1.0
    assert result.adapter == cfg.output_dir / "adapter" and result.base_model == tiny_model_dir
    adapter_cfg = json.loads((result.adapter / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 8 and adapter_cfg["bias"] == "none"
    steps = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "loss" in m]
    assert result.counts["steps"] == 6 and result.counts["records"] == 8 and steps
    assert steps[-1]["loss"] < steps[0]["loss"]


def test_records_are_conversational_prompt_completion_rows():
    (row,) = sft_rows(records(1))
    assert row["prompt"] == [{"role": "user", "content": "Please revise answer number 0."}]
    assert row["completion"] == [{"role": "assistant", "content": records(1)[0].completion}]


def test_a_starting_adapter_dir_without_an_adapter_is_a_clear_error(tiny_model_dir, tmp_path):
    policy = PolicySpec(path=tiny_model_dir, adapter=tmp_path)
    cfg = SFTConfig(output_dir=tmp_path / "o", policy=policy, records=[tmp_path / "r.jsonl"])
    with pytest.raises(ConfigError, match=r"policy.adapter: .* is not a LoRA adapter directory"):
        run_sft(cfg)
