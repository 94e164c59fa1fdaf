"""What a finished PPO stage leaves in its output folder, and the key its mid-stage checkpoints carry.

Guarantees: the actor is saved as the stage's config asks (the LoRA adapter with its tokenizer, plus a
merged model with ``save: merged``; the full model without LoRA), the critic when ``save_critic``;
``result.json`` is written last, by the main process only, after the rollout adapter and the
mid-stage checkpoints (no longer needed once the stage is done) are removed; every process waits for
the others before and after, so no rank returns before the files exist.
"""

from __future__ import annotations

import shutil
from typing import Any

from rlaif.files import apply_umask
from rlaif.train import ppo_checkpoint
from rlaif.train.common import StageResult, resume_key
from rlaif.train.configs import PolicySpec
from rlaif.train.critic import save_critic
from rlaif.train.models import merge_policy, save_full_model


def checkpoint_key(trainer) -> str:
    """Checkpoints are resumed only for the same settings, prompts (this process's share) and
    number of processes."""
    reward = getattr(trainer.reward_fn, "__name__", type(trainer.reward_fn).__name__)
    return resume_key(trainer.cfg, [trainer.rows, reward, trainer.accelerator.num_processes])


def save_stage(trainer, history: list[dict[str, Any]]) -> StageResult:
    """The stage's result (counts, last metrics, score and KL curves) with its saved models."""
    acc, out = trainer.accelerator, trainer.out
    acc.wait_for_everyone()
    result = StageResult(
        stage="ppo",
        output_dir=out,
        base_model=trainer.base,
        metrics_path=out / "metrics.jsonl",
        metrics=history[-1] if history else {},
        counts={
            "steps": len(history),
            "prompts": len(trainer.rows) * acc.num_processes,
            "world_size": acc.num_processes,
        },
        extra={"score_curve": [h["score"] for h in history], "kl_curve": [h["kl"] for h in history]},
    )
    if acc.is_main_process:
        _save_models(trainer, result)
        shutil.rmtree(out / "rollout_adapter", ignore_errors=True)
        shutil.rmtree(out / ppo_checkpoint.CHECKPOINTS, ignore_errors=True)  # the stage is done
        result.write()
    acc.wait_for_everyone()
    return result


def _save_models(trainer, result: StageResult) -> None:
    cfg, acc, out, tokenizer = trainer.cfg, trainer.accelerator, trainer.out, trainer.tokenizer
    actor = acc.unwrap_model(trainer.actor)
    if cfg.lora is not None:
        result.adapter = out / "adapter"
        actor.save_pretrained(str(result.adapter))
        tokenizer.save_pretrained(str(result.adapter))
        apply_umask(result.adapter)  # safetensors writes its files 0600
        if cfg.save == "merged":
            result.merged_model = merge_policy(
                PolicySpec(path=trainer.base, adapter=result.adapter), out / "model"
            )
    else:
        result.base_model = save_full_model(actor, tokenizer, out / "model")
    if cfg.save_critic:
        result.extra["critic"] = str(save_critic(acc.unwrap_model(trainer.critic), tokenizer, out / "critic"))
