"""Sampling and scoring a PPO rollout.

Why these steps are what they are: prompts are tokenised exactly as the vLLM engine does (chat
template text, no extra special tokens), so HF and engine rollouts condition on the same ids; HF
sampling is plain ``softmax(logits / temperature)`` (no top-k/top-p) with the log-probs of the
sampled tokens recorded while sampling; an engine serves the actor's current LoRA adapter, saved
before every rollout; responses are cut at the first EOS, or with ``stop_strings`` after the token
that completes the first stop string (kept, as our vLLM code sampling keeps it; HF and the engine
both stop sampling there); the reward sees the decoded response without its EOS and, as
``completion_ids``, the token ids up to the cut. A response that ended at a stop string has ended:
it pays no missing-EOS penalty.

Guarantees: a reward of ``None`` makes a sample invalid (its tokens carry no reward and no gradient);
a missing EOS is penalised before any normalisation. Non-guarantee: engine rollouts carry no
log-probs here; the trainer re-scores them with a forward pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlaif.engines.base import Engine, Sampling
from rlaif.train import ppo_math as pm
from rlaif.train.configs import PPOConfig
from rlaif.train.ppo_batch import Rollout, Scores
from rlaif.train.rewards import RewardFn, call_reward
from rlaif.train.stop_strings import stop_criteria


def left_pad(queries: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), padded on the left so every response starts at the same column."""
    width = max(len(q) for q in queries)
    ids = torch.full((len(queries), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, q in enumerate(queries):
        ids[i, width - len(q) :] = torch.tensor(q, dtype=torch.long)
        attn[i, width - len(q) :] = 1
    return ids.to(device), attn.to(device)


def forward_inputs(q_ids, q_attn, r_ids, r_mask) -> dict[str, torch.Tensor]:
    """Query + response as one forward's inputs; positions count real tokens only (left padding)."""
    input_ids = torch.cat([q_ids, r_ids], dim=1)
    attention_mask = torch.cat([q_attn, r_mask], dim=1)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}


def hf_generate(
    actor, tokenizer, queries: list[list[int]], eos_ids: list[int], cfg: PPOConfig, accelerator
) -> tuple[list[list[int]], torch.Tensor]:
    """(raw response ids, log-probs of the sampled tokens) from HF ``generate`` under the autocast."""
    from transformers import GenerationConfig, LogitsProcessorList

    stops = tuple(cfg.stop_strings or ())
    gen_cfg = GenerationConfig(
        do_sample=True,
        temperature=1.0,  # the temperature is applied by pm.SampledLogprobs
        top_k=0,
        top_p=1.0,
        max_new_tokens=cfg.max_completion_length,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    recorder = pm.SampledLogprobs(cfg.temperature)
    ids, attn = left_pad(queries, tokenizer.pad_token_id, accelerator.device)
    with torch.no_grad(), accelerator.autocast():
        seqs = actor.generate(
            input_ids=ids,
            attention_mask=attn,
            generation_config=gen_cfg,
            logits_processor=LogitsProcessorList([recorder]),
            stopping_criteria=stop_criteria(tokenizer, stops) if stops else None,
        )
    responses = seqs[:, ids.shape[1] :]
    return [row.tolist() for row in responses.cpu()], recorder.finish(responses)


def engine_generate(
    engine: Engine, actor, prompts: list, cfg: PPOConfig, adapter_dir: Path, seed: int
) -> list[list[int]]:
    """Raw response ids (``num_generations`` per prompt, in order) from an engine serving the
    actor's current adapter, saved to ``adapter_dir`` first."""
    actor.save_pretrained(str(adapter_dir))
    sampling = Sampling(
        n=cfg.num_generations,
        temperature=cfg.temperature,
        top_p=1.0,
        max_tokens=cfg.max_completion_length,
        seed=seed,
        stop=list(cfg.stop_strings or []),
        include_stop=bool(cfg.stop_strings),
    )
    outs = engine.generate(prompts, sampling, adapter=str(adapter_dir))
    return [list(c.token_ids or []) for per_prompt in outs for c in per_prompt]


def cut_at_eos(
    queries: list[list[int]],
    raw: list[list[int]],
    sampled_logp,
    eos_ids: list[int],
    pad_id: int,
    device,
    stopped: list[bool] | None = None,
) -> Rollout:
    """Pad the raw responses into one tensor and cut each at its first EOS (padding after it);
    ``stopped`` marks the responses a stop string ended
    (:func:`rlaif.train.stop_strings.cut_at_stop`). The padding of a row shorter than the
    longest (cut at a stop string, or an engine's row) is masked out whether or not pad is an EOS."""
    width = max(1, max(len(r) for r in raw))
    padded = torch.full((len(raw), width), pad_id, dtype=torch.long)
    for i, r in enumerate(raw):
        padded[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    r_ids, r_mask, has_eos = pm.truncate_at_eos(padded, eos_ids, pad_id)
    within = torch.arange(width).unsqueeze(0) < torch.tensor([len(r) for r in raw]).unsqueeze(1)
    r_mask = r_mask * within
    r_ids = torch.where(within, r_ids, torch.full_like(r_ids, pad_id))
    if sampled_logp is not None:  # stop cuts may have shortened every row
        sampled_logp = sampled_logp[:, :width]
    stop = torch.tensor(stopped if stopped is not None else [False] * len(raw), dtype=torch.bool)
    return Rollout(
        queries, r_ids.to(device), r_mask.to(device), has_eos.to(device), sampled_logp, stop.to(device)
    )


def score_rollout(
    reward_fn: RewardFn,
    tokenizer,
    eos_ids: list[int],
    rows: list[dict[str, Any]],
    rollout: Rollout,
    cfg: PPOConfig,
    moments: pm.RunningMoments | None,
    gather=None,
) -> Scores:
    """Call the reward on the decoded responses (EOS dropped); shape the scores for the update."""
    n, dev = cfg.num_generations, rollout.response_ids.device
    lengths = rollout.response_mask.sum(dim=1).tolist()
    completion_ids = [ids[: int(k)] for ids, k in zip(rollout.response_ids.tolist(), lengths, strict=True)]
    texts = [
        tokenizer.decode([t for t in ids if t not in eos_ids], skip_special_tokens=True)
        for ids in completion_ids
    ]
    raw_scores = call_reward(
        reward_fn,
        [r["prompt"] for r in rows for _ in range(n)],
        [[{"role": "assistant", "content": t}] for t in texts],
        completion_ids=completion_ids,
        **{k: [r[k] for r in rows for _ in range(n)] for k in rows[0] if k != "prompt"},
    )
    valid = torch.tensor([s is not None for s in raw_scores], device=dev)
    raw = torch.tensor([0.0 if s is None else s for s in raw_scores], device=dev, dtype=torch.float32)
    shaped = pm.apply_missing_eos_penalty(raw, rollout.has_eos | rollout.stopped, cfg.missing_eos_penalty)
    if moments is not None or cfg.reward_clip is not None:
        shaped = torch.where(valid, shaped, torch.zeros_like(shaped))
        shaped = pm.normalise_scores(shaped, moments, cfg.reward_clip, gather)
    return Scores(raw, shaped, valid, (rollout.response_mask * valid.unsqueeze(1)).float())
