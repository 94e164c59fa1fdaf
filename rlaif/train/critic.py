"""The PPO critic: a transformer with a scalar value head applied at every token.

Why a sequence-classification model: a reward model (``rlaif train reward-model``) is exactly that -
a backbone plus a one-output ``score`` head that is read at the last token. Reading the same head at
every position gives per-token values, so the critic starts from the reward model's weights (the
InstructGPT recipe) with no conversion; without a reward model it starts from the policy's backbone
with a fresh head.

Guarantee: the wrapper's ``forward`` goes through the module that ``accelerate`` prepares, so DDP's
gradient synchronisation sees every call. Non-guarantee: architectures whose classification head is
not called ``score`` (Llama, Qwen, Mistral, Gemma use ``score``) are refused with a ConfigError.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rlaif.errors import ConfigError
from rlaif.train.configs import LoraSettings
from rlaif.train.models import disable_dropout, peft_lora_config, save_full_model
from rlaif.train.reward_model import load_reward_backbone


class ValueModel(torch.nn.Module):
    """values[b, t] = score_head(backbone(x)[b, t]) for every position t."""

    def __init__(self, seqcls_model):
        super().__init__()
        self.model = seqcls_model
        inner = seqcls_model.get_base_model() if hasattr(seqcls_model, "get_base_model") else seqcls_model
        prefix = getattr(inner, "base_model_prefix", "model")
        if not hasattr(inner, prefix) or not hasattr(inner, "score"):
            raise ConfigError(
                f"critic: {type(inner).__name__} has no '{prefix}' backbone with a 'score' head"
            )
        self.backbone = getattr(inner, prefix)
        self.head = inner.score

    def forward(self, input_ids, attention_mask, position_ids=None):
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return self.head(hidden).squeeze(-1).float()


def load_critic(path: str | Path, lora: LoraSettings | None, pad_token_id: int, dtype=None) -> ValueModel:
    model, _ = load_reward_backbone(path, dtype)
    model.config.pad_token_id = pad_token_id
    if lora is not None:
        from peft import get_peft_model

        settings = lora.model_copy(update={"dropout": 0.0})
        model = get_peft_model(
            model, peft_lora_config(settings, task_type="SEQ_CLS", modules_to_save=["score"])
        )
    disable_dropout(model)
    return ValueModel(model)


def save_critic(critic: ValueModel, tokenizer, out_dir: str | Path) -> Path:
    """Save as a plain sequence-classification model (LoRA merged), reusable as a critic or RM init."""
    model = critic.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return save_full_model(model, tokenizer, out_dir)
