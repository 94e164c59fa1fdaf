"""Reward model on a separable toy pair set: held-out accuracy, freezing, soft labels, scoring."""

from __future__ import annotations

import json

import pytest
import torch

from rlaif.records import load_pairs
from rlaif.train.configs import RewardModelConfig
from rlaif.train.reward_model import (
    RewardModelScorer,
    freeze_layers,
    load_reward_backbone,
    score,
    split_heldout,
    train_reward_model,
)


def test_heldout_accuracy_well_above_chance(trained_reward_model, rm_pairs_file):
    cfg, result = trained_reward_model
    acc = result.extra["heldout_accuracy"]
    print(f"reward model held-out accuracy: {acc:.3f} on {result.counts['heldout_pairs']} pairs")
    assert result.counts["heldout_pairs"] >= 8
    assert acc >= 0.8

    # Independent check with the scorer on exactly the held-out pairs
    _, held = split_heldout(load_pairs(rm_pairs_file), cfg.eval_fraction)
    scorer = RewardModelScorer(result.base_model)
    chosen = scorer.score([[*p.prompt, {"role": "assistant", "content": p.chosen}] for p in held])
    rejected = scorer.score([[*p.prompt, {"role": "assistant", "content": p.rejected}] for p in held])
    own_acc = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(held)
    assert own_acc == pytest.approx(acc, abs=1e-6)


def test_counts_freezing_and_outputs(trained_reward_model, tiny_model_dir, assert_changed_in_fp32):
    cfg, result = trained_reward_model
    assert result.counts["frozen_layers"] == 1  # 70% of 2 layers, rounded down
    assert result.counts["soft_labelled_pairs"] > 0
    assert result.counts["train_pairs"] + result.counts["heldout_pairs"] == 64
    assert (result.base_model / "tokenizer.json").is_file() and (result.base_model / "config.json").is_file()
    saved = json.loads((cfg.output_dir / "result.json").read_text())
    assert saved["extra"]["heldout_accuracy"] == result.extra["heldout_accuracy"]
    # The frozen first block is bit-identical to the starting model; the last block moved
    start, _ = load_reward_backbone(tiny_model_dir)
    trained, _ = load_reward_backbone(result.base_model)
    s, t = start.state_dict(), trained.state_dict()
    first = [k for k in s if ".layers.0." in k]
    last = [k for k in s if ".layers.1." in k]
    assert first and all(torch.equal(s[k], t[k]) for k in first)
    assert_changed_in_fp32(s, t, last)
    assert torch.equal(s["model.embed_tokens.weight"], t["model.embed_tokens.weight"])


def test_scorer_is_a_reward_function(trained_reward_model):
    _, result = trained_reward_model
    scorer = RewardModelScorer(result.base_model)
    prompts = [[{"role": "user", "content": "Describe river."}]] * 2
    completions = [
        [{"role": "assistant", "content": "stone cloud music thank you"}],
        "stone cloud music go away",
    ]
    rewards = scorer(prompts=prompts, completions=completions, extra_column=[1, 2])
    assert len(rewards) == 2 and rewards[0] > rewards[1]
    conv = [{"role": "user", "content": "Describe river."}, {"role": "assistant", "content": "a thank you"}]
    assert score(result.base_model, [conv]) == pytest.approx(scorer.score([conv]))


def test_freeze_layers_counts():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    model = LlamaForSequenceClassification(
        LlamaConfig(
            vocab_size=32,
            hidden_size=64,
            intermediate_size=64,
            num_hidden_layers=10,
            num_attention_heads=1,
            num_key_value_heads=1,
            num_labels=1,
        )
    )
    assert freeze_layers(model, 0.7) == 7
    frozen = {n.split(".")[2] for n, p in model.named_parameters() if not p.requires_grad and ".layers." in n}
    assert frozen == {str(i) for i in range(7)}
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.score.weight.requires_grad


def test_lora_reward_model_with_margins_runs(tiny_model_dir, rm_pairs_file, tmp_path):
    cfg = RewardModelConfig(
        output_dir=tmp_path / "rm_lora",
        model=tiny_model_dir,
        pairs=[rm_pairs_file],
        lora={"r": 4, "alpha": 8},
        soft_labels=False,
        use_margin=True,
        max_steps=2,
        learning_rate=1e-3,
    )
    result = train_reward_model(cfg)
    assert result.counts["steps"] == 2 and result.counts["soft_labelled_pairs"] == 0
    # saved merged: a plain classification model, no adapter files
    assert not (result.base_model / "adapter_config.json").exists()
    assert len(RewardModelScorer(result.base_model).score([[{"role": "user", "content": "x"}]])) == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_soft_label_loss_is_soft_bradley_terry(tiny_model_dir, tmp_path, precision):
    """One pair with P(chosen better) = 0.3: the logged loss is -(0.3 log s(d) + 0.7 log s(-d)) at the logged margin d.

    Under bf16 autocast too: a loss computed in bf16 (spacing ~0.004 near 0.69) would miss rel=1e-4."""
    import math

    from rlaif.records import Message, PreferencePair, write_jsonl
    from rlaif.train.common import read_metrics

    pair = PreferencePair(
        id="soft",
        prompt=[Message(role="user", content="Pick one.")],
        chosen="this one",
        rejected="that one",
        soft_label=0.3,
        source="test",
    )
    write_jsonl(tmp_path / "soft.jsonl", [pair])
    cfg = RewardModelConfig(
        output_dir=tmp_path / "rm_soft",
        model=tiny_model_dir,
        pairs=[tmp_path / "soft.jsonl"],
        eval_fraction=0.0,
        max_steps=1,
        per_device_train_batch_size=1,
        precision=precision,
    )
    train_reward_model(cfg)
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "margin" in m]
    d = line["margin"]

    def log_sigmoid(x):
        return -math.log1p(math.exp(-x))

    assert line["loss"] == pytest.approx(-(0.3 * log_sigmoid(d) + 0.7 * log_sigmoid(-d)), rel=1e-4)
    # and it is not the hard-label loss -log s(d) (they differ by 0.7 d; d is ~0.007 here)
    assert abs(-log_sigmoid(d) - line["loss"]) > 1e-3
