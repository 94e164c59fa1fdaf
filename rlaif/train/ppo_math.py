"""The arithmetic of PPO for language models, as pure tensor functions.

Kept apart from the trainer so each formula is tested against hand-computed values on small tensors
(tests/train/test_ppo_math.py). Conventions: tensors are ``[batch, response_len]``, right-padded;
``mask`` is 1 on real response tokens (including the EOS token that ends a response) and 0 after.

References: Ziegler et al. 2019 (per-token KL penalty, adaptive controller), Schulman et al. 2016
(GAE), Ouyang et al. 2022 (score at the last token, ptx), the "N implementation details of RLHF with
PPO" notes (whitening, value clipping, EOS handling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over masked entries; 0 where nothing is masked in (never NaN)."""
    if dim is None:
        return masked_sum(x, mask) / mask.sum().clamp(min=1)
    return masked_sum(x, mask, dim) / mask.sum(dim=dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(
    x: torch.Tensor,
    mask: torch.Tensor,
    shift_mean: bool = True,
    eps: float = 1e-8,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(x - mean) / std over the masked entries; padding stays 0.

    ``all_reduce`` (a sum over processes) makes mean and std those of the GLOBAL batch under data
    parallelism, so each process whitens exactly as one process holding every sample would."""
    if all_reduce is None:
        mean, var = masked_mean(x, mask), masked_var(x, mask)
    else:
        mean, var = global_masked_moments(x, mask, all_reduce)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def global_masked_moments(
    x: torch.Tensor, mask: torch.Tensor, all_reduce: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance of the masked entries of every process (two passes, like
    :func:`masked_var`, so one process gives the same numbers)."""
    total = all_reduce(torch.stack([masked_sum(x, mask), mask.sum()]).float())
    n = total[1]
    mean = total[0] / n.clamp(min=1)
    var = all_reduce(masked_sum((x - mean) ** 2, mask).reshape(1).float())[0] / n.clamp(min=1)
    if n > 1:
        var = var * n / (n - 1)
    return mean, var


def truncate_at_eos(
    response_ids: torch.Tensor, eos_token_ids: int | Sequence[int], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each response after its first EOS (kept). Returns (ids, mask, has_eos).

    Why: sampling continues past EOS in a padded batch; those tokens were never part of the response
    and must carry neither reward nor gradient. Several EOS ids are allowed (chat models often end a
    turn with a token other than the tokenizer's EOS).
    """
    eos = torch.tensor([eos_token_ids] if isinstance(eos_token_ids, int) else list(eos_token_ids))
    is_eos = torch.isin(response_ids, eos.to(response_ids.device))
    has_eos = is_eos.any(dim=1)
    length = response_ids.shape[1]
    positions = torch.arange(length, device=response_ids.device).expand_as(response_ids)
    first = torch.where(
        has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, length, dtype=torch.long)
    )
    mask = (positions <= first.unsqueeze(1)).to(torch.long)
    ids = torch.where(mask.bool(), response_ids, torch.full_like(response_ids, pad_token_id))
    return ids, mask, has_eos


def apply_missing_eos_penalty(
    scores: torch.Tensor, has_eos: torch.Tensor, penalty: float | None
) -> torch.Tensor:
    """Subtract ``penalty`` from the score of every response that never emitted EOS."""
    if penalty is None:
        return scores
    return scores - penalty * (~has_eos).to(scores.dtype)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token per row (0 for an empty row)."""
    lengths = mask.sum(dim=1).long()
    return (lengths - 1).clamp(min=0)


def kl_penalised_rewards(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    scores: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reward -beta * (log pi - log pi_ref), plus the sequence score at the last real token.

    Returns (rewards, kl) where kl is the per-token log-ratio (masked) used for logging/control.
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    idx = last_token_index(mask)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards = rewards.clone()
    rewards[rows, idx] += scores.to(rewards.dtype) * (mask.sum(dim=1) > 0).to(rewards.dtype)
    return rewards * mask, kl


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation. Returns (advantages, returns = advantages + values).

    The state after the last real token is terminal (value 0): padding carries no value.
    """
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last  # padding after the end has delta 0, so it adds nothing
        advantages[:, t] = last
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate loss. Returns (loss, clip fraction, approx KL old->new (k3 estimator))."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
    return loss, clipfrac.detach(), approx_kl.detach()


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * max((V - R)^2, (V_clip - R)^2). Returns (loss, clip fraction)."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(loss_unclipped, loss_clipped), mask)
    clipfrac = masked_mean((loss_clipped > loss_unclipped).to(values.dtype), mask)
    return loss, clipfrac.detach()


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R): 1 is a perfect critic, 0 no better than a constant, < 0 worse."""
    var_r = masked_var(returns, mask, unbiased=False)
    if var_r <= 0:
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask, unbiased=False) / var_r)


def logprobs_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """log p(label) under softmax(logits / temperature): the distribution the tokens were sampled from."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


class SampledLogprobs:
    """A logits processor that samples from softmax(logits / T) and records each sampled token's log-prob.

    Why: the rollout's "old" log-probs must be those of the distribution the tokens were drawn from;
    recording them while sampling saves the actor's no-grad forward pass over the batch (TRL did the
    same) and keeps one ``[batch, vocab]`` buffer instead of every step's logits. It must be the only
    processor (sampling runs with temperature 1, no top-k/top-p), so it sees the raw logits.
    """

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.prev: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prev is not None:  # the token sampled at the previous step is now input_ids[:, -1]
            self.steps.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        scores = scores / self.temperature
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """``[batch, generated]`` log-probs (entries after a response's EOS are meaningless: masked)."""
        if self.prev is not None:
            self.steps.append(self.prev.gather(1, sequences[:, -1:]).squeeze(1))
        return torch.stack(self.steps, dim=1)


class FixedKLController:
    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Ziegler et al. 2019: beta <- beta * (1 + clip(KL/target - 1, -0.2, 0.2) * n / horizon)."""

    def __init__(self, init_value: float, target: float, horizon: int):
        self.value = init_value
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


@dataclass
class RunningMoments:
    """Running mean/std over every score seen (Chan et al. parallel update), for reward normalisation."""

    mean: float = 0.0
    var: float = 1.0
    count: float = 1e-24

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double().flatten()
        n = x.numel()
        if n == 0:
            return
        batch_mean = float(x.mean())
        batch_var = float(x.var(unbiased=False)) if n > 1 else 0.0
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))


def normalise_scores(
    scores: torch.Tensor,
    moments: RunningMoments | None,
    clip: float | None,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Update the running moments with this batch, then standardise and optionally clip to [-clip, clip].

    ``gather`` (every process's scores, concatenated) feeds the moments the GLOBAL batch, so every
    process keeps the same moments as one process holding every sample."""
    out = scores
    if moments is not None:
        moments.update(gather(scores) if gather is not None else scores)
        out = (scores - moments.mean) / (moments.std + 1e-8)
    if clip is not None:
        out = out.clamp(-clip, clip)
    return out
