"""The PPO update of one iteration: ``ppo_epochs`` passes over the batch in shuffled minibatches, each
a clipped-ratio policy step (plus the ptx LM loss when on) and a clipped value step.

Works on a :class:`rlaif.train.ppo.PPOTrainer` (its models, optimisers, accelerator, config and RNG),
as :mod:`rlaif.train.ppo_checkpoint` does; the loss arithmetic lives in :mod:`rlaif.train.ppo_math`.

Guarantees: tokens outside ``scores.mask`` (after the first EOS, or of a sample whose reward is None)
carry no gradient; both steps clip the gradient norm to ``max_grad_norm``; under data parallelism each
process's token-mean loss is weighted by its share of the global minibatch's response tokens
(:func:`token_share`), so DDP's gradient average equals the token mean one process would take over
the global minibatch. The minibatch order comes from the trainer's RNG, so a resumed run shuffles as
an uninterrupted one does.
"""

from __future__ import annotations

import torch

from rlaif.train import ppo_math as pm
from rlaif.train.ppo_batch import Estimates, Rollout, Scores

STAT_KEYS = ("policy_loss", "value_loss", "clipfrac", "value_clipfrac", "approx_kl", "entropy", "ptx_loss")


def optimise(trainer, rollout: Rollout, scores: Scores, est: Estimates) -> dict[str, list[float]]:
    """``ppo_epochs`` passes over the batch in shuffled minibatches; per-minibatch losses and rates."""
    n, size = len(rollout.queries), trainer.cfg.minibatch_size
    stats: dict[str, list[float]] = {k: [] for k in STAT_KEYS}
    for _ in range(trainer.cfg.ppo_epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(trainer.rng.randrange(2**31)))
        for s in range(0, n, size):
            idx = perm[s : s + size].to(trainer.accelerator.device)
            mb = {k: v[idx] for k, v in est.inputs.items()}
            _actor_update(trainer, mb, idx, rollout, scores, est, stats)
            _critic_update(trainer, mb, idx, scores, est, stats)
    return stats


def all_reduce(acc, x: torch.Tensor) -> torch.Tensor:
    """Sum over processes (identity in one process)."""
    return acc.reduce(x.clone(), reduction="sum") if acc.num_processes > 1 else x


def token_share(acc, mask: torch.Tensor) -> torch.Tensor | float:
    """The factor that turns this process's token-mean loss into its share of the GLOBAL minibatch's
    token mean, once DDP averages the gradients over processes: world * local tokens / all tokens.
    Why: processes hold different numbers of response tokens, and the mean of per-process means
    is not the mean over the global minibatch that one process would take."""
    world = acc.num_processes
    if world == 1:
        return 1.0
    local = mask.sum().detach().float()
    return local * world / all_reduce(acc, local.reshape(1))[0].clamp(min=1)


def _actor_update(trainer, mb, idx, rollout: Rollout, scores: Scores, est: Estimates, stats) -> None:
    """Clipped-ratio policy loss (plus the ptx LM loss when on); one clipped AdamW step."""
    cfg, acc, m = trainer.cfg, trainer.accelerator, scores.mask[idx]
    logp, ent = trainer._logprobs(trainer.actor, mb, rollout.response_ids[idx], with_entropy=True)
    pg_loss, clipfrac, approx_kl = pm.policy_loss(
        logp, est.old_logp[idx], est.advantages[idx], m, cfg.cliprange
    )
    loss = pg_loss * token_share(acc, m)
    if trainer.ptx_texts is not None:
        ptx = _ptx_loss(trainer)
        loss = loss + cfg.ptx_coef * ptx
        stats["ptx_loss"].append(float(ptx.detach()))
    acc.backward(loss)
    acc.clip_grad_norm_(trainer.actor.parameters(), cfg.max_grad_norm)
    trainer.actor_opt.step()
    trainer.actor_opt.zero_grad(set_to_none=True)
    for key, val in (("policy_loss", pg_loss), ("clipfrac", clipfrac), ("approx_kl", approx_kl)):
        stats[key].append(float(val.detach()))
    stats["entropy"].append(float(pm.masked_mean(ent.detach(), m)))


def _critic_update(trainer, mb, idx, scores: Scores, est: Estimates, stats) -> None:
    """Clipped value loss around the rollout's values, weighted by vf_coef; one clipped AdamW step."""
    cfg, acc, m = trainer.cfg, trainer.accelerator, scores.mask[idx]
    vpred = trainer.critic(**mb)[:, est.context - 1 : -1]
    vf_loss, vclip = pm.value_loss(vpred, est.old_values[idx], est.returns[idx], m, cfg.cliprange_value)
    acc.backward(cfg.vf_coef * vf_loss * token_share(acc, m))
    acc.clip_grad_norm_(trainer.critic.parameters(), cfg.max_grad_norm)
    trainer.critic_opt.step()
    trainer.critic_opt.zero_grad(set_to_none=True)
    stats["value_loss"].append(float(vf_loss.detach()))
    stats["value_clipfrac"].append(float(vclip.detach()))


def _ptx_loss(trainer) -> torch.Tensor:
    """The LM loss on a sample of the pre-training texts (InstructGPT's PPO-ptx), from the trainer's RNG."""
    cfg, tokenizer = trainer.cfg, trainer.tokenizer
    texts = trainer.rng.sample(trainer.ptx_texts, min(cfg.ptx_batch_size, len(trainer.ptx_texts)))
    limit = cfg.max_prompt_tokens + cfg.max_completion_length
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=limit)
    batch = batch.to(trainer.accelerator.device)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return trainer.actor(**batch, labels=labels, use_cache=False).loss
