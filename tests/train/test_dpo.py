"""DPO rounds on the tiny model for real: the chosen-over-rejected margin rises, outputs serve in vLLM."""

from __future__ import annotations

import json
import statistics

import pytest

from rlaif.engines.base import Sampling
from rlaif.errors import ConfigError, RecordError
from rlaif.records import load_pairs
from rlaif.train.common import read_metrics
from rlaif.train.configs import DPOConfig, PolicySpec
from rlaif.train.dpo import pair_logps, run_dpo
from rlaif.train.models import load_policy, load_tokenizer


def mean_margin(policy: PolicySpec, pairs, tokenizer) -> float:
    return statistics.mean(c - r for c, r in pair_logps(load_policy(policy), tokenizer, pairs))


@pytest.fixture(scope="module")
def round_one(tiny_model_dir, dpo_pairs_file, tmp_path_factory):
    cfg = DPOConfig(
        output_dir=tmp_path_factory.mktemp("dpo_r1"),
        policy=PolicySpec(path=tiny_model_dir),
        pairs=[dpo_pairs_file],
        learning_rate=5e-3,
        beta=0.1,
    )
    return cfg, run_dpo(cfg)


def round_two(first, pairs_file, tmp_path, **changes) -> DPOConfig:
    """A second round from round one's result, on the same pairs; ``changes`` are what it tests."""
    return DPOConfig(
        output_dir=tmp_path / "r2", policy=first.policy, pairs=[pairs_file], learning_rate=5e-3, **changes
    )


def test_lora_round_raises_margin_and_logs(round_one, tiny_model_dir, dpo_pairs_file):
    cfg, result = round_one
    pairs = load_pairs(dpo_pairs_file)
    tok = load_tokenizer(tiny_model_dir)
    before = mean_margin(PolicySpec(path=tiny_model_dir), pairs, tok)
    after = mean_margin(result.policy, pairs, tok)
    print(f"DPO logp margin chosen-rejected: before {before:.2f}, after {after:.2f}")
    assert after > before + 1.0

    assert result.adapter == cfg.output_dir / "adapter" and result.base_model == tiny_model_dir
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (result.adapter / name).is_file(), name
    adapter_cfg = json.loads((result.adapter / "adapter_config.json").read_text())
    assert adapter_cfg["r"] <= 16 and adapter_cfg["bias"] == "none" and not adapter_cfg["use_dora"]

    lines = read_metrics(cfg.output_dir / "metrics.jsonl")
    steps = [m for m in lines if "loss" in m]
    assert len(steps) == result.counts["steps"] == 4  # 16 pairs / batch 4
    for key in ("rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"):
        assert key in steps[-1]
    assert steps[-1]["rewards/margins"] > steps[0]["rewards/margins"]
    saved = json.loads((cfg.output_dir / "result.json").read_text())
    assert saved["counts"]["pairs"] == 16 and saved["adapter"] == str(result.adapter)


def test_adapter_serves_in_vllm_and_changes_samples(round_one, vllm_engine):
    _, result = round_one
    prompts = [[{"role": "user", "content": f"Tell me about the apple number {i}."}] for i in range(4)]
    greedy = Sampling(temperature=0.0, max_tokens=12)
    base = vllm_engine.generate(prompts, greedy)
    tuned = vllm_engine.generate(prompts, greedy, adapter=str(result.adapter))
    base_texts = [c[0].text for c in base]
    tuned_texts = [c[0].text for c in tuned]
    print("base :", base_texts[:2], "\ntuned:", tuned_texts[:2])
    assert base_texts != tuned_texts
    # the tuned policy moved towards the words of the chosen answers ("The <topic> is good, thank you.")
    chosen_words = {"The", "is", "good,", "good", "thank", "you.", "you"}

    def chosen_share(texts):
        words = [w for t in texts for w in t.split()]
        return sum(w in chosen_words for w in words) / max(1, len(words))

    assert chosen_share(tuned_texts) > chosen_share(base_texts)


def test_continue_adapter_with_ipo_and_nll_term(
    round_one, tiny_model_dir, dpo_pairs_file, tmp_path, vllm_engine
):
    _, first = round_one
    cfg = round_two(first, dpo_pairs_file, tmp_path, loss_type="ipo", nll_weight=0.2, adapter_mode="continue")
    result = run_dpo(cfg)
    assert result.extra["loss_type"] == ["ipo", "sft"]
    assert result.base_model == tiny_model_dir  # same base: the same engine serves every round
    assert not (result.adapter / "ref").exists()  # TRL's frozen reference copy is not shipped
    pairs = load_pairs(dpo_pairs_file)
    tok = load_tokenizer(tiny_model_dir)
    assert mean_margin(result.policy, pairs, tok) > mean_margin(first.policy, pairs, tok)
    out = vllm_engine.generate(["hello"], Sampling(max_tokens=4, seed=1), adapter=str(result.adapter))
    assert len(out) == 1 and out[0][0].token_ids


def test_new_adapter_on_merged_start_with_sft_reference_and_merged_save(
    round_one, tiny_model_dir, dpo_pairs_file, tmp_path
):
    import torch

    _, first = round_one
    cfg = round_two(
        first, dpo_pairs_file, tmp_path, reference="sft", sft_model=tiny_model_dir, save="merged", max_steps=2
    )
    result = run_dpo(cfg)
    assert result.base_model == cfg.output_dir / "base" and (result.base_model / "config.json").is_file()
    assert result.merged_model == cfg.output_dir / "model"
    assert (result.merged_model / "tokenizer.json").is_file()
    assert result.policy == PolicySpec(path=result.merged_model)
    # merged weights == base + adapter
    pairs = load_pairs(dpo_pairs_file)[:4]
    tok = load_tokenizer(tiny_model_dir)
    with_adapter = pair_logps(
        load_policy(PolicySpec(path=result.base_model, adapter=result.adapter)), tok, pairs
    )
    merged = pair_logps(load_policy(PolicySpec(path=result.merged_model)), tok, pairs)
    assert torch.allclose(torch.tensor(with_adapter), torch.tensor(merged), atol=1e-3)


def test_full_finetuning_writes_a_model_dir(tiny_model_dir, dpo_pairs_file, tmp_path):
    cfg = DPOConfig(
        output_dir=tmp_path / "full",
        policy=PolicySpec(path=tiny_model_dir),
        pairs=[dpo_pairs_file],
        lora=None,
        learning_rate=1e-3,
        precompute_ref_log_probs=True,
    )
    result = run_dpo(cfg)
    assert result.adapter is None and result.base_model == cfg.output_dir / "model"
    assert (result.base_model / "model.safetensors").is_file() and (
        result.base_model / "tokenizer.json"
    ).is_file()
    pairs = load_pairs(dpo_pairs_file)
    tok = load_tokenizer(tiny_model_dir)
    assert (
        mean_margin(result.policy, pairs, tok)
        > mean_margin(PolicySpec(path=tiny_model_dir), pairs, tok) + 1.0
    )


def test_bad_pair_file_is_a_clear_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"id": "x", "prompt": [], "chosen": "a", "rejectd": "b", "source": "s"}\n')
    cfg = DPOConfig(output_dir=tmp_path / "o", policy=PolicySpec(path=tiny_model_dir), pairs=[bad])
    with pytest.raises(RecordError, match=r"pairs.jsonl:1"):
        run_dpo(cfg)


def test_a_starting_adapter_dir_without_an_adapter_is_a_clear_error(tiny_model_dir, tmp_path):
    policy = PolicySpec(path=tiny_model_dir, adapter=tmp_path)
    cfg = DPOConfig(output_dir=tmp_path / "o", policy=policy, pairs=[tmp_path / "pairs.jsonl"])
    with pytest.raises(ConfigError, match=r"policy.adapter: .* is not a LoRA adapter directory"):
        run_dpo(cfg)
