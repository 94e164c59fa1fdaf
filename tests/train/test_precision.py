"""Mixed precision done right, on whatever device there is (CPU runs the bf16 path through CPU autocast).

What is proven here: ``auto`` resolves to the GPU path in one place; trained models keep fp32 master
weights under bf16 autocast and save fp32 checkpoints (a small-learning-rate update survives, which
bf16 weights would round away); frozen blocks stay bit-identical; the soft-label reward loss is fp32
under autocast; PPO's actor and reference compute alike, so the KL at step 0 is exactly 0; and DPO
then PPO in one process with two precisions works (accelerate's process-wide state is reset).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rlaif.errors import ConfigError
from rlaif.train.common import read_metrics
from rlaif.train.configs import DPOConfig, PolicySpec, PPOConfig, RewardModelConfig
from rlaif.train.precision import (
    accelerate_mixed_precision,
    frozen_dtype,
    mixed_precision_flags,
    resolve_precision,
    trainable_dtype,
)


def test_auto_takes_the_gpu_path_only_on_a_bf16_gpu(monkeypatch):
    from rlaif.train import precision

    monkeypatch.setattr(precision, "resolve_precision", resolve_precision)  # the real one, always
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto") == "bf16"
    assert trainable_dtype("auto") == torch.float32  # master weights stay fp32 on the GPU too
    assert frozen_dtype("auto") == torch.bfloat16
    assert mixed_precision_flags("auto") == {"bf16": True, "fp16": False}
    assert accelerate_mixed_precision("auto") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto") == "fp32" and accelerate_mixed_precision("auto") == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto") == "fp32" and frozen_dtype("auto") == torch.float32
    assert mixed_precision_flags("auto") == {"bf16": False, "fp16": False}
    assert trainable_dtype("bf16") == torch.float32 and frozen_dtype("bf16") == torch.bfloat16
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp8")


def test_bf16_full_dpo_trains_fp32_master_weights(tiny_model_dir, dpo_pairs_file, tmp_path, device):
    """At lr 1e-5 an AdamW step moves a weight by ~1e-5, far below bf16's spacing at the tiny model's
    weight scale (~1e-4): with bf16 weights nothing would change; with fp32 master weights most do."""
    from transformers import TrainerCallback

    from rlaif.train.dpo import run_dpo

    seen: dict = {}

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen["bf16"] = args.bf16
            seen["dtypes"] = {p.dtype for p in model.parameters()}
            seen["device"] = next(model.parameters()).device.type

    cfg = DPOConfig(
        output_dir=tmp_path / "dpo_bf16",
        policy=PolicySpec(path=tiny_model_dir),
        pairs=[dpo_pairs_file],
        lora=None,
        precision="bf16",
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        max_steps=2,
    )
    result = run_dpo(cfg, callbacks=[Probe()])
    assert seen == {"bf16": True, "dtypes": {torch.float32}, "device": device.type}
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(result.base_model / "model.safetensors"))
    assert {t.dtype for t in after.values()} == {torch.float32}
    key = "model.layers.1.mlp.down_proj.weight"
    w, delta = start[key], (after[key] - start[key]).abs()
    moved = (delta > 0).float().mean().item()
    bf16_half_spacing = torch.pow(2.0, torch.floor(torch.log2(w.abs())) - 8)  # 8 significant bits
    below_bf16 = (delta < bf16_half_spacing).float().mean().item()
    print(f"{key}: {moved:.3f} of the weights changed, {below_bf16:.3f} by less than bf16 could hold")
    assert moved > 0.5 and below_bf16 > 0.5


def test_bf16_reward_model_keeps_frozen_block_bit_identical(tiny_model_dir, rm_pairs_file, tmp_path):
    from rlaif.train.reward_model import train_reward_model

    cfg = RewardModelConfig(
        output_dir=tmp_path / "rm_bf16",
        model=tiny_model_dir,
        pairs=[rm_pairs_file],
        eval_fraction=0.0,
        freeze_fraction=0.5,
        precision="bf16",
        learning_rate=1e-3,
        max_steps=2,
        per_device_train_batch_size=8,
    )
    result = train_reward_model(cfg)
    assert result.counts["frozen_layers"] == 1
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(result.base_model / "model.safetensors"))
    assert {t.dtype for t in after.values()} == {torch.float32}
    first = [k for k in start if ".layers.0." in k] + ["model.embed_tokens.weight"]
    last = [k for k in start if ".layers.1." in k]
    assert all(torch.equal(start[k], after[k]) for k in first)
    assert any(not torch.equal(start[k], after[k]) for k in last)


def test_soft_label_loss_is_fp32_under_autocast(device):
    from rlaif.train.reward_model import soft_bradley_terry_loss

    chosen = torch.tensor([0.71, -0.20, 1.50], device=device, dtype=torch.bfloat16, requires_grad=True)
    rejected = torch.tensor([0.70, 0.30, 1.49], device=device, dtype=torch.bfloat16)
    soft = torch.tensor([0.3, 0.9, 1.0], device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = soft_bradley_terry_loss(chosen, rejected, soft, center_coefficient=0.01)
    assert loss.dtype == torch.float32
    c, r, p = chosen.detach().double(), rejected.double(), soft.double()
    d = c - r
    expected = -(p * torch.nn.functional.logsigmoid(d) + (1 - p) * torch.nn.functional.logsigmoid(-d)).mean()
    expected = expected + 0.01 * ((c + r) ** 2).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), abs=1e-6)
    loss.backward()
    assert chosen.grad is not None and chosen.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("lora", [None, {"r": 4, "alpha": 8}], ids=["full_ref_copy", "lora_disabled_adapter"])
def test_ppo_kl_is_exactly_zero_at_step_zero_under_bf16(tiny_model_dir, tmp_path, toy_prompts, lora):
    """Actor and reference share weights at step 0 and run under the same autocast: KL is exactly 0,
    and with one minibatch and one epoch the update's first ratio is exactly 1 (no clipping)."""
    from rlaif.train.ppo import PPOTrainer

    cfg = PPOConfig(
        output_dir=tmp_path / "ppo_bf16",
        policy=PolicySpec(path=tiny_model_dir),
        lora=lora,
        precision="bf16",
        max_steps=1,
        batch_size=4,
        minibatch_size=4,
        ppo_epochs=1,
        max_completion_length=6,
        learning_rate=1e-3,
        save_critic=False,
    )
    trainer = PPOTrainer(cfg, prompts=toy_prompts(4), reward_fn=lambda prompts, completions, **kw: [1.0] * 4)
    assert trainer.accelerator.mixed_precision == "bf16"
    stats = trainer.step()
    assert stats["kl"] == 0.0 and stats["approx_kl"] == 0.0 and stats["clipfrac"] == 0.0
    trained = [p for p in trainer._unwrapped_actor().parameters() if p.requires_grad]
    assert trained and {p.dtype for p in trained} == {torch.float32}
    assert trainer.step()["kl"] != 0.0  # the first update moved the actor away from the reference


def test_dpo_then_ppo_in_one_process_with_two_precisions(
    tiny_model_dir, dpo_pairs_file, tmp_path, toy_prompts
):
    """The pipeline runs DPO (TRL sets accelerate's process-wide state) then PPO in one process."""
    from rlaif.train.dpo import run_dpo
    from rlaif.train.ppo import PPOTrainer

    dpo = run_dpo(
        DPOConfig(
            output_dir=tmp_path / "dpo",
            policy=PolicySpec(path=tiny_model_dir),
            pairs=[dpo_pairs_file],
            precision="bf16",
            max_steps=1,
        )
    )
    reward = lambda prompts, completions, **kw: [0.5] * len(completions)  # noqa: E731
    for i, precision in enumerate(("fp32", "bf16")):
        cfg = PPOConfig(
            output_dir=tmp_path / f"ppo{i}",
            policy=dpo.policy,
            precision=precision,
            max_steps=1,
            batch_size=2,
            minibatch_size=2,
            ppo_epochs=1,
            max_completion_length=4,
            save_critic=False,
        )
        trainer = PPOTrainer(cfg, prompts=toy_prompts(2), reward_fn=reward)
        assert trainer.accelerator.mixed_precision == ("no" if precision == "fp32" else "bf16")
        trainer.train()
        (line,) = read_metrics(cfg.output_dir / "metrics.jsonl")
        assert line["step"] == 1 and line["response_tokens"] > 0
    again = run_dpo(  # and TRL can follow our PPO
        DPOConfig(
            output_dir=tmp_path / "dpo2",
            policy=PolicySpec(path=tiny_model_dir),
            pairs=[dpo_pairs_file],
            precision="fp32",
            max_steps=1,
        )
    )
    assert again.counts["steps"] == 1
