"""One DPO round with TRL's DPOTrainer: pair files + starting policy -> a policy vLLM can serve.

What we add around TRL (and nothing more, so the overhead stays small): pair files validated through
:mod:`rlaif.records`, the reference choice (starting policy or a fixed SFT model), the LoRA round modes
(see :class:`rlaif.train.configs.DPOConfig`), an NLL-on-chosen term (TRL's ``sft`` loss added with
weight ``nll_weight``, as in Llama 3's +0.2), a ``metrics.jsonl`` (loss, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected per logging step) and a ``result.json``.

Outputs under ``output_dir``: ``adapter/`` (LoRA) or ``model/`` (full fine-tuning or ``save: merged``),
``base/`` when a previous adapter had to be merged first, ``metrics.jsonl``, ``result.json``.

Works under ``accelerate launch`` (DDP, DeepSpeed, FSDP through ``deepspeed``/``fsdp`` fields): only
the main process writes files. Non-guarantee: ``save: merged`` re-loads the saved adapter on the main
process, so the merged model must fit in one process's memory.
"""

from __future__ import annotations

from pathlib import Path

from rlaif.records import PreferencePair, load_pairs, pairs_to_dataset
from rlaif.train.common import (
    StageResult,
    make_trl_config,
    resume_key,
    run_logged_trainer,
    save_policy_stage,
    tensorboard_dir,
    trainer_kwargs,
)
from rlaif.train.configs import DPOConfig
from rlaif.train.models import (
    check_model_dir,
    check_policy,
    load_causal_lm,
    load_policy,
    load_tokenizer,
    merged_starting_base,
    peft_lora_config,
)
from rlaif.train.precision import frozen_dtype, trainable_dtype


def trl_dpo_args(cfg: DPOConfig):
    """Our DPO settings as TRL's DPOConfig (NLL term = TRL's ``sft`` loss with weight nll_weight)."""
    from trl import DPOConfig as TRLDPOConfig

    loss_type = list(cfg.loss_type)
    weights = list(cfg.loss_weights) if cfg.loss_weights is not None else [1.0] * len(loss_type)
    if cfg.nll_weight > 0:
        loss_type.append("sft")
        weights.append(cfg.nll_weight)
    kw = trainer_kwargs(cfg)
    kw.update(
        beta=cfg.beta,
        loss_type=loss_type,
        loss_weights=weights if len(loss_type) > 1 or cfg.loss_weights is not None else None,
        label_smoothing=cfg.label_smoothing,
        max_length=cfg.max_length,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        disable_dropout=True,
    )
    kw.update(cfg.trainer_args)
    return make_trl_config(TRLDPOConfig, kw, "dpo")


def _check_inputs(cfg: DPOConfig) -> None:
    check_policy(cfg.policy)
    if cfg.reference == "sft" and cfg.sft_model is not None:
        check_model_dir(cfg.sft_model, "sft_model")


def _starting_base(cfg: DPOConfig) -> Path:
    """The model directory the new adapter applies to; merges a previous adapter for adapter_mode=new."""
    if cfg.lora is None or cfg.adapter_mode == "continue":
        return Path(cfg.policy.path)
    return merged_starting_base(cfg.policy, cfg.output_dir)


def _policy_model(cfg: DPOConfig, base: Path, dtype):
    """(model, peft_config): the trainable policy and, for a new adapter, the LoRA config TRL applies."""
    if cfg.lora is None:
        return load_causal_lm(base, dtype), None
    if cfg.adapter_mode == "continue" and cfg.policy.adapter is not None:
        return load_policy(cfg.policy, trainable=True, dtype=dtype), None
    return load_causal_lm(base, dtype), peft_lora_config(cfg.lora)


def run_dpo(
    cfg: DPOConfig, *, pairs: list[PreferencePair] | None = None, callbacks: list | None = None
) -> StageResult:
    """Train one DPO round and save it; ``pairs`` (already loaded) replaces ``cfg.pairs`` when given."""
    from trl import DPOTrainer

    _check_inputs(cfg)
    train_pairs = pairs if pairs is not None else load_pairs(cfg.pairs)
    eval_pairs = load_pairs(cfg.eval_pairs) if cfg.eval_pairs else []
    train_ds = pairs_to_dataset(train_pairs)
    eval_ds = pairs_to_dataset(eval_pairs) if eval_pairs else None

    args = trl_dpo_args(cfg)
    tokenizer = load_tokenizer(cfg.policy.path)
    base = _starting_base(cfg)
    # fp32 master weights; bf16 comes from autocast (args.bf16)
    model, peft_config = _policy_model(cfg, base, trainable_dtype(cfg.precision))
    # a fixed SFT reference is never updated: half precision under a mixed-precision run
    ref_model = load_causal_lm(cfg.sft_model, frozen_dtype(cfg.precision)) if cfg.reference == "sft" else None

    def build(all_callbacks: list) -> DPOTrainer:
        return DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=all_callbacks,
        )

    key = resume_key(cfg, [p.model_dump(mode="json") for p in train_pairs + eval_pairs])
    trainer, _ = run_logged_trainer(
        build,
        args,
        "dpo",
        Path(cfg.output_dir),
        callbacks=callbacks,
        evaluate=eval_ds is not None,
        key=key,
        logging_dir=tensorboard_dir(cfg),
    )
    return save_policy_stage(
        trainer,
        cfg,
        tokenizer,
        stage="dpo",
        base=base,
        counts={"pairs": len(train_pairs), "eval_pairs": len(eval_pairs)},
        extra={"loss_type": args.loss_type, "beta": cfg.beta, "reference": cfg.reference},
    )


def pair_logps(
    model, tokenizer, pairs: list[PreferencePair], batch_size: int = 8
) -> list[tuple[float, float]]:
    """Summed log-probs of (chosen, rejected) under ``model``, tokenised exactly as TRL does for DPO.

    Why: the DPO objective raises log pi(chosen) - log pi(rejected) relative to the reference; this
    measures that margin directly, before and after a round, independent of TRL's own logging.
    """
    import torch

    def completion_ids(pair: PreferencePair, text: str) -> tuple[list[int], int]:
        prompt = [m.model_dump() for m in pair.prompt]
        p_ids = tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        full = tokenizer.apply_chat_template(
            prompt + [{"role": "assistant", "content": text}], tokenize=True, return_dict=False
        )
        n = 0
        while n < min(len(p_ids), len(full)) and p_ids[n] == full[n]:
            n += 1
        return list(full), n

    seqs = []
    for pair in pairs:
        seqs.append(completion_ids(pair, pair.chosen))
        seqs.append(completion_ids(pair, pair.rejected))
    device = next(model.parameters()).device
    sums: list[float] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start : start + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for i, (row, _) in enumerate(chunk):
                ids[i, : len(row)] = torch.tensor(row)
                attn[i, : len(row)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1))
            logp = logp.squeeze(-1).cpu()
            for i, (row, n_prompt) in enumerate(chunk):
                sums.append(float(logp[i, n_prompt - 1 : len(row) - 1].sum()))
    model.train(was_training)
    return [(sums[2 * i], sums[2 * i + 1]) for i in range(len(pairs))]
