"""Bradley-Terry reward model on preference pairs (TRL RewardTrainer), and a scorer to use it.

Training: the policy's weights under a one-output sequence-classification head, trained on
``PreferencePair`` files. Optional freezing of the embeddings and the first ``freeze_fraction`` of the
transformer blocks (the lecture exercise froze 70%): cheaper, and less prone to overfitting a small
synthetic pair set. Soft labels (RLAIF / CAI give P(chosen better)) use a soft Bradley-Terry loss,
our small extension of TRL's hard-label loss; see :class:`rlaif.train.configs.RewardModelConfig`.

Evaluation: accuracy (reward(chosen) > reward(rejected)) on held-out pairs, either given files or a
deterministic share of the training pairs chosen by a hash of the pair id (so re-runs hold out the
same pairs). The held-out pairs are never trained on.

Output: ``<output_dir>/model`` - a plain sequence-classification model directory with its tokenizer
(LoRA is merged on save), loadable by :class:`RewardModelScorer`, by TRL's GRPO as a reward model, and
as our PPO critic's initialisation.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlaif.errors import ConfigError
from rlaif.records import Message, PreferencePair, as_conversation, load_pairs, pairs_to_dataset, stable_hash
from rlaif.tasks.base import completion_text
from rlaif.train.common import (
    StageResult,
    last_values,
    make_trl_config,
    resume_key,
    run_logged_trainer,
    tensorboard_dir,
    trainer_kwargs,
)
from rlaif.train.configs import RewardModelConfig
from rlaif.train.models import (
    check_model_dir,
    decoder_layers,
    load_tokenizer,
    peft_lora_config,
    save_full_model,
)
from rlaif.train.precision import trainable_dtype


def split_heldout(
    pairs: list[PreferencePair], fraction: float
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Deterministic split by pair id: the same pair is always on the same side."""
    if fraction <= 0:
        return pairs, []
    train, held = [], []
    for p in pairs:
        bucket = int(stable_hash("heldout", p.id, length=8), 16) / 16**8
        (held if bucket < fraction else train).append(p)
    if not held and len(pairs) > 1:  # tiny sets: hold out at least one pair
        held, train = train[-1:], train[:-1]
    return train, held


def freeze_layers(model, fraction: float) -> int:
    """Freeze the input embeddings and the first floor(fraction * L) blocks; returns how many blocks."""
    if fraction <= 0:
        return 0
    layers = decoder_layers(model)
    k = int(fraction * len(layers))
    for p in model.get_input_embeddings().parameters():
        p.requires_grad_(False)
    for block in list(layers)[:k]:
        for p in block.parameters():
            p.requires_grad_(False)
    return k


def load_reward_backbone(path: str | Path, dtype=None):
    """A one-output sequence-classification model; from a causal LM the score head starts random."""
    from transformers import AutoModelForSequenceClassification

    check_model_dir(path, "model")
    kwargs: dict[str, Any] = {"num_labels": 1}
    if dtype is not None:
        kwargs["dtype"] = dtype
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    with suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(str(path), **kwargs)
    tok = load_tokenizer(path)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def soft_bradley_terry_loss(chosen, rejected, soft, center_coefficient: float | None = None):
    """-(p log s(d) + (1-p) log s(-d)), d = r(chosen) - r(rejected), p = P(chosen better); in fp32.

    Why fp32: under bf16 autocast the score head returns bf16 rewards, and a bf16 difference of two
    nearby rewards (and its log-sigmoid) loses most of its digits; the upcast happens before the
    subtraction and the loss is computed outside autocast.
    """
    import torch
    import torch.nn.functional as F

    with torch.autocast(device_type=chosen.device.type, enabled=False):
        chosen, rejected = chosen.float(), rejected.float()
        d = chosen - rejected
        p = soft.to(device=d.device, dtype=torch.float32)
        loss = -(p * F.logsigmoid(d) + (1 - p) * F.logsigmoid(-d)).mean()
        if center_coefficient is not None:
            loss = loss + center_coefficient * ((chosen + rejected) ** 2).mean()
    return loss


def _soft_label_trainer_class():
    """RewardTrainer whose loss is soft Bradley-Terry when a ``soft_label`` column is present."""
    from trl import RewardTrainer

    class SoftLabelRewardTrainer(RewardTrainer):
        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "soft_label"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            soft = inputs.pop("soft_label", None)
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
            if soft is not None:
                chosen, rejected = outputs.logits.squeeze(-1).chunk(2)
                loss = soft_bradley_terry_loss(chosen, rejected, soft, self.args.center_rewards_coefficient)
            return (loss, outputs) if return_outputs else loss

    return SoftLabelRewardTrainer


class _SoftLabelCollator:
    """Wraps TRL's preference collator to carry the ``soft_label`` column along."""

    def __init__(self, base):
        self.base = base

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        out = self.base([{k: v for k, v in ex.items() if k != "soft_label"} for ex in examples])
        if "soft_label" in examples[0]:
            out["soft_label"] = torch.tensor([float(ex["soft_label"]) for ex in examples], dtype=torch.float)
        return out


def _dataset(pairs: list[PreferencePair], cfg: RewardModelConfig, with_labels: bool):
    ds = pairs_to_dataset(pairs)
    if with_labels and cfg.soft_labels:
        ds = ds.add_column(
            "soft_label", [1.0 if p.soft_label is None else float(p.soft_label) for p in pairs]
        )
    if with_labels and cfg.use_margin:
        ds = ds.add_column("margin", [0.0 if p.margin is None else float(p.margin) for p in pairs])
    return ds


def train_reward_model(cfg: RewardModelConfig, *, callbacks: list | None = None) -> StageResult:
    """Train, evaluate on held-out pairs, save ``<output_dir>/model``; returns the stage result."""
    from trl import RewardConfig
    from trl.trainer.reward_trainer import DataCollatorForPreference

    pairs = load_pairs(cfg.pairs)
    if cfg.eval_pairs:
        train_pairs, held = pairs, load_pairs(cfg.eval_pairs)
    else:
        train_pairs, held = split_heldout(pairs, cfg.eval_fraction)
    if not train_pairs:
        raise ConfigError(f"reward model: no training pairs left after holding out {len(held)}")
    soft_count = sum(p.soft_label is not None for p in train_pairs)

    from transformers import set_seed

    set_seed(cfg.seed)  # the score head is drawn at load: unseeded, two runs (or ranks) started apart
    dtype = trainable_dtype(cfg.precision)  # fp32 master weights; frozen blocks stay bit-identical
    model, tokenizer = load_reward_backbone(cfg.model, dtype)
    frozen = freeze_layers(model, cfg.freeze_fraction)
    peft_config = None
    if cfg.lora is not None:
        peft_config = peft_lora_config(cfg.lora, task_type="SEQ_CLS", modules_to_save=["score"])

    kw = trainer_kwargs(cfg)
    kw.update(max_length=cfg.max_length, center_rewards_coefficient=cfg.center_rewards_coefficient)
    kw.update(cfg.trainer_args)
    args = make_trl_config(RewardConfig, kw, "reward model")
    collator = _SoftLabelCollator(DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id))

    out = Path(cfg.output_dir)

    def build(all_callbacks: list):
        return _soft_label_trainer_class()(
            model=model,
            args=args,
            data_collator=collator,
            train_dataset=_dataset(train_pairs, cfg, with_labels=True),
            eval_dataset=_dataset(held, cfg, with_labels=False) if held else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=all_callbacks,
        )

    key = resume_key(cfg, [p.model_dump(mode="json") for p in train_pairs + held])
    trainer, eval_metrics = run_logged_trainer(
        build,
        args,
        "reward_model",
        out,
        callbacks=callbacks,
        evaluate=bool(held),
        key=key,
        logging_dir=tensorboard_dir(cfg),
    )

    target = out / "model"
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        final = trainer.accelerator.unwrap_model(trainer.model)
        if cfg.lora is not None:
            final = final.merge_and_unload()
        save_full_model(final, tokenizer, target)
        if not cfg.save_steps:
            shutil.rmtree(out / "trainer", ignore_errors=True)
    result = StageResult(
        stage="reward_model",
        output_dir=out,
        base_model=target,
        metrics_path=out / "metrics.jsonl",
        metrics=last_values(trainer.state.log_history),
        counts={
            "train_pairs": len(train_pairs),
            "heldout_pairs": len(held),
            "soft_labelled_pairs": soft_count if cfg.soft_labels else 0,
            "frozen_layers": frozen,
            "steps": trainer.state.global_step,
            "world_size": args.world_size,
        },
        extra={"heldout_accuracy": eval_metrics.get("eval_accuracy")},
    )
    if trainer.accelerator.is_main_process:
        result.write()
    trainer.accelerator.wait_for_everyone()
    return result


class RewardModelScorer:
    """Scores conversations with a trained reward model; also usable as a TRL-style reward function.

    ``score(conversations)`` takes full conversations (ending with the assistant turn to score) and
    returns one float each. Calling the scorer as ``scorer(prompts=..., completions=...)`` builds those
    conversations from a prompt and a completion, so it plugs into PPO, GRPO and RLOO unchanged.
    """

    def __init__(
        self, path: str | Path, *, device: str | None = None, batch_size: int = 16, max_length: int = 2048
    ):
        import torch

        self.path = Path(path)
        self.model, self.tokenizer = load_reward_backbone(self.path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.__name__ = f"reward_model:{self.path.name}"

    def _render(self, conversation: Sequence[Message | dict]) -> str:
        msgs = [m.model_dump() for m in as_conversation(list(conversation))]
        return self.tokenizer.apply_chat_template(msgs, tokenize=False)

    def score(self, conversations: Sequence[Sequence[Message | dict]]) -> list[float]:
        import torch

        texts = [self._render(c) for c in conversations]
        scores: list[float] = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    padding_side="right",
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=False,
                ).to(self.device)
                logits = self.model(**batch).logits[:, 0].float().cpu()
                scores.extend(float(x) for x in logits)
        return scores

    def __call__(self, prompts: list, completions: list, **_: Any) -> list[float]:
        convs = []
        for prompt, completion in zip(prompts, completions, strict=True):
            msgs = as_conversation(prompt)
            convs.append([*msgs, Message(role="assistant", content=completion_text(completion))])
        return self.score(convs)


def score(model_dir: str | Path, conversations: Sequence[Sequence[Message | dict]]) -> list[float]:
    """One-shot scoring with the reward model in ``model_dir`` (loads it each call; keep a scorer for loops)."""
    return RewardModelScorer(model_dir).score(conversations)
