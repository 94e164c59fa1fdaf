"""Our PPO on the tiny model for real: it learns a verifiable reward with bounded KL, and its roles are wired right.

The toy reward is the fraction of response tokens (EOS excluded) whose id is in a fixed target set
(ids divisible by 8, ~12% of the vocabulary): a random policy scores ~0.12, so a rise is learning.
"""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from rlaif.engines.base import Sampling
from rlaif.errors import ConfigError
from rlaif.train.common import read_metrics
from rlaif.train.configs import PolicySpec, PPOConfig
from rlaif.train.ppo import PPOTrainer, run_ppo

METRIC_KEYS = {
    "score",
    "reward",
    "kl",
    "kl_coef",
    "clipfrac",
    "value_loss",
    "value_clipfrac",
    "policy_loss",
    "explained_variance",
    "response_length",
    "eos_rate",
    "approx_kl",
    "entropy",
    "tokens_per_s",
}


def target_token_reward(eos_token_id: int):
    def target_fraction(prompts, completions, completion_ids, **_):
        out = []
        for ids in completion_ids:
            ids = [i for i in ids if i != eos_token_id]
            out.append(sum(i % 8 == 0 and i > 5 for i in ids) / max(1, len(ids)))
        return out

    return target_fraction


def eos_id(model_dir) -> int:
    from rlaif.train.models import load_tokenizer

    return load_tokenizer(model_dir).eos_token_id


def learning_run(output_dir, model_dir, **changes) -> PPOConfig:
    """The toy reward's learning runs: 16 rollouts a step, 2 PPO epochs on one minibatch, 12 tokens,
    normalised rewards held near the reference by a fixed KL penalty; ``changes`` set the actor."""
    return PPOConfig(
        output_dir=output_dir,
        policy=PolicySpec(path=model_dir),
        batch_size=16,
        minibatch_size=16,
        ppo_epochs=2,
        max_completion_length=12,
        critic_learning_rate=1e-3,
        kl_coef=0.2,
        normalize_rewards=True,
        missing_eos_penalty=None,
        save_critic=False,
        **changes,
    )


def test_ppo_learns_a_verifiable_reward_with_bounded_kl(tiny_model_dir, tmp_path, toy_prompts):
    cfg = learning_run(
        tmp_path / "ppo",
        tiny_model_dir,
        lora=None,  # full fine-tuning: the reference is a frozen copy
        max_steps=16,
        learning_rate=5e-3,
    )
    result = run_ppo(cfg, prompts=toy_prompts(), reward_fn=target_token_reward(eos_id(tiny_model_dir)))
    lines = read_metrics(cfg.output_dir / "metrics.jsonl")
    assert len(lines) == 16 and METRIC_KEYS <= set(lines[0])
    scores = [m["score"] for m in lines]
    kls = [m["kl"] for m in lines]
    print("PPO curve (step, mean score, KL):")
    for m in lines:
        print(
            f"  {m['step']:2d} score={m['score']:.3f} kl={m['kl']:.2f} clip={m['clipfrac']:.2f} ev={m['explained_variance']:.2f}"
        )
    first, last = statistics.mean(scores[:3]), statistics.mean(scores[-4:])
    assert last > first + 0.1, (first, last)
    assert max(kls) < 30.0  # the -beta*KL term keeps the policy near the reference (12 tokens)
    assert result.extra["score_curve"] == scores
    assert (result.base_model / "model.safetensors").is_file() and (
        result.base_model / "tokenizer.json"
    ).is_file()


def test_lora_ppo_roles_rm_critic_reference_ptx(
    trained_reward_model, tiny_model_dir, tmp_path, toy_prompts, device
):
    from rlaif.train.models import load_causal_lm
    from rlaif.train.reward_model import load_reward_backbone

    _, rm = trained_reward_model
    ptx = tmp_path / "ptx.txt"
    ptx.write_text("the river runs past the stone\nmusic and light fill the room\n")
    cfg = PPOConfig(
        output_dir=tmp_path / "ppo_lora",
        policy=PolicySpec(path=tiny_model_dir),
        reward={"reward_model": rm.base_model},
        max_steps=2,
        batch_size=4,
        minibatch_size=2,
        ppo_epochs=1,
        max_completion_length=8,
        learning_rate=1e-2,
        adaptive_kl=True,
        kl_target=0.01,
        kl_horizon=100,
        normalize_rewards=True,
        reward_clip=3.0,
        ptx_coef=0.5,
        ptx_data=ptx,
    )
    trainer = PPOTrainer(cfg, prompts=toy_prompts(8))
    # critic initialised from the reward model: same value head and backbone weights
    rm_model, _ = load_reward_backbone(rm.base_model)
    assert torch.equal(trainer.critic.head.weight.cpu(), rm_model.score.weight)
    assert torch.equal(
        trainer.critic.backbone.layers[1].mlp.down_proj.weight.cpu(),
        rm_model.model.layers[1].mlp.down_proj.weight,
    )
    result = trainer.train()

    lines = read_metrics(cfg.output_dir / "metrics.jsonl")
    assert [m["step"] for m in lines] == [1, 2]
    assert all(m["ptx_loss"] is not None and m["ptx_loss"] > 0 for m in lines)
    assert lines[1]["kl_coef"] != lines[0]["kl_coef"]  # adaptive controller moved beta
    # reference = the same model with the adapter disabled, equal to the untouched base
    ids = torch.tensor([[1, 10, 20, 30, 40]], device=device)
    base = load_causal_lm(tiny_model_dir, torch.float32).to(device).eval()
    actor = trainer._unwrapped_actor()
    with torch.no_grad(), actor.disable_adapter():
        ref_logits = actor(input_ids=ids).logits.float()
    with torch.no_grad(), trainer.accelerator.autocast():  # the actor's precision (bf16 under auto on a GPU)
        assert torch.allclose(ref_logits, base(input_ids=ids).logits.float(), atol=1e-5)
        assert not torch.allclose(actor(input_ids=ids).logits.float(), ref_logits, atol=1e-5)
    assert all(not m.training or m.p == 0 for m in actor.modules() if isinstance(m, torch.nn.Dropout))
    # outputs: adapter with tokenizer, critic as a classification model, result.json
    assert (result.adapter / "adapter_config.json").is_file() and (
        result.adapter / "tokenizer.json"
    ).is_file()
    assert (cfg.output_dir / "critic" / "config.json").is_file()
    saved = json.loads((cfg.output_dir / "result.json").read_text())
    assert saved["counts"]["steps"] == 2 and saved["adapter"] == str(result.adapter)


def test_rollouts_from_the_vllm_engine_serving_the_adapter(
    vllm_engine, tiny_model_dir, tmp_path, toy_prompts
):
    cfg = PPOConfig(
        output_dir=tmp_path / "ppo_engine",
        policy=PolicySpec(path=tiny_model_dir),
        rollout="engine",
        max_steps=2,
        batch_size=4,
        num_generations=2,
        minibatch_size=4,
        ppo_epochs=1,
        max_completion_length=8,
        learning_rate=1e-2,
        save_critic=False,
    )
    result = run_ppo(
        cfg,
        prompts=toy_prompts(8),
        reward_fn=target_token_reward(eos_id(tiny_model_dir)),
        engine=vllm_engine,
    )
    lines = read_metrics(cfg.output_dir / "metrics.jsonl")
    assert len(lines) == 2
    for m in lines:
        assert 1 <= m["response_length"] <= 8 and m["response_tokens"] > 0
        assert abs(m["approx_kl"]) < 1.0  # vLLM's samples are scored by HF under the same adapter
    assert (result.adapter / "adapter_model.safetensors").is_file()
    assert not (cfg.output_dir / "rollout_adapter").exists()  # scratch adapter removed
    out = vllm_engine.generate(["hi"], Sampling(max_tokens=3), adapter=str(result.adapter))
    assert out[0][0].token_ids


def test_sampling_logprobs_match_a_forward_pass(tiny_model_dir, tmp_path, toy_prompts, device):
    """The log-probs recorded while sampling are those of softmax(logits / T) for the sampled tokens.

    fp32 on every device: this checks the arithmetic, not bf16 rounding (KV-cached sampling vs a full
    forward differ by ~1e-2 under bf16, which is why bf16 runs re-score rollouts with a forward)."""
    from rlaif.train import ppo_math as pm

    cfg = PPOConfig(
        output_dir=tmp_path / "ppo_lp",
        policy=PolicySpec(path=tiny_model_dir),
        max_steps=1,
        batch_size=4,
        max_completion_length=10,
        temperature=0.7,
        precision="fp32",
    )
    trainer = PPOTrainer(cfg, prompts=toy_prompts(4), reward_fn=lambda prompts, completions, **kw: [0.0] * 4)
    queries, raw, sampled = trainer._generate(trainer._next_rows())
    r_ids, r_mask, _ = pm.truncate_at_eos(torch.tensor(raw), trainer.eos_ids, trainer.tokenizer.pad_token_id)
    r_ids, r_mask, sampled = r_ids.to(device), r_mask.to(device), sampled.to(device)
    q_ids, q_attn = trainer._left_pad(queries)
    inputs = trainer._forward_inputs(q_ids, q_attn, r_ids, r_mask)
    with torch.no_grad():
        recomputed, _ = trainer._logprobs(trainer.actor, inputs, r_ids)
    assert sampled.shape == recomputed.shape == (4, 10)
    assert torch.allclose(sampled * r_mask, recomputed * r_mask, atol=1e-4)
    # and at T=0.7 they differ from the untempered log-probs
    logits = trainer.actor(**inputs).logits[:, q_ids.shape[1] - 1 : -1]
    assert not torch.allclose(pm.logprobs_from_logits(logits, r_ids) * r_mask, sampled * r_mask, atol=1e-2)


def test_none_rewards_are_left_out_and_missing_eos_is_penalised(tiny_model_dir, tmp_path, toy_prompts):
    calls = []

    def half_none(prompts, completions, **kw):
        calls.append(len(completions))
        return [None if i % 2 else 1.0 for i in range(len(completions))]

    cfg = PPOConfig(
        output_dir=tmp_path / "ppo_none",
        policy=PolicySpec(path=tiny_model_dir),
        max_steps=1,
        batch_size=4,
        minibatch_size=4,
        ppo_epochs=1,
        max_completion_length=4,  # a random model rarely ends within 4 tokens
        missing_eos_penalty=2.0,
        save_critic=False,
    )
    run_ppo(cfg, prompts=toy_prompts(4), reward_fn=half_none)
    (m,) = read_metrics(cfg.output_dir / "metrics.jsonl")
    assert calls == [4] and m["reward_none"] == 2
    assert m["score"] == 1.0  # the mean over the two scored samples only
    # with seed 0 none of the 4-token responses ends with EOS, so each scored one pays the penalty
    assert m["eos_rate"] == 0.0
    assert m["reward"] == pytest.approx(1.0 - 2.0)


def test_starting_adapter_is_merged_and_engine_mismatch_is_refused(
    tiny_model_dir, tmp_path, vllm_engine, toy_prompts
):
    from peft import get_peft_model

    from rlaif.train.configs import LoraSettings
    from rlaif.train.models import load_causal_lm, peft_lora_config

    adapter = tmp_path / "start_adapter"
    get_peft_model(load_causal_lm(tiny_model_dir), peft_lora_config(LoraSettings(r=4))).save_pretrained(
        str(adapter)
    )
    cfg = PPOConfig(
        output_dir=tmp_path / "ppo_merge",
        policy=PolicySpec(path=tiny_model_dir, adapter=adapter),
        rollout="engine",
        max_steps=1,
    )
    with pytest.raises(ConfigError, match="engine_factory"):
        PPOTrainer(
            cfg,
            prompts=toy_prompts(4),
            reward_fn=lambda prompts, completions, **kw: [0.0] * len(prompts),
            engine=vllm_engine,
        )
    assert (cfg.output_dir / "base" / "config.json").is_file()


@pytest.mark.slow
def test_lora_ppo_learning_curve(tmp_path, toy_prompts):
    """LoRA actor (reference = adapter disabled) on a briefly pre-trained tiny model; prints the curve.

    Why pre-trained: the random model's LM head (std 0.02) caps how far hidden-state changes can move
    the output distribution (supervised LoRA plateaus at ~0.17 target mass there), so only full
    fine-tuning, which trains the head, can learn this reward on the random model.
    """
    from rlaif.tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "pretrained", seed=0, steps=300)
    cfg = learning_run(
        tmp_path / "ppo_lora_long", model_dir, lora={"r": 16, "alpha": 32}, max_steps=30, learning_rate=3e-3
    )
    run_ppo(cfg, prompts=toy_prompts(), reward_fn=target_token_reward(eos_id(model_dir)))
    lines = read_metrics(cfg.output_dir / "metrics.jsonl")
    print("LoRA PPO curve (step, mean score, KL):")
    for m in lines:
        print(f"  {m['step']:2d} score={m['score']:.3f} kl={m['kl']:.2f}")
    scores = [m["score"] for m in lines]
    # step 1 scores the untouched policy (~0.14); the rise comes within a few steps, then KL holds it
    assert statistics.mean(scores[-5:]) > scores[0] + 0.07
    assert max(m["kl"] for m in lines) < 20.0
