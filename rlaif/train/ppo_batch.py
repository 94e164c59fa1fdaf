"""What one PPO iteration hands from phase to phase (rollout -> scores -> estimates), and the one
``metrics.jsonl`` line computed from them.

Guarantees: every mean in the metrics line is over the valid samples (reward not None) of every
process (summed then divided, so uneven shards weigh each sample once); the collective calls happen
in the same order on every rank. Non-guarantee: ``score_std`` is this process's own spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlaif.train import ppo_math as pm


@dataclass
class Rollout:
    """One iteration's samples: query ids, responses cut at the first EOS or stop string (padding after
    it), and the log-probs recorded while sampling (None for engine rollouts)."""

    queries: list[list[int]]
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    has_eos: torch.Tensor
    sampled_logp: torch.Tensor | None
    stopped: torch.Tensor
    """Ended at a stop string (``stop_strings``): ended like an EOS, with no EOS token."""


@dataclass
class Scores:
    """Rewards of a rollout: ``raw`` (0 where the reward was None), ``shaped`` (missing-EOS penalty,
    optional normalisation and clipping), ``valid`` (not None) and ``mask`` (response tokens of valid
    samples: the only tokens that carry reward and gradient)."""

    raw: torch.Tensor
    shaped: torch.Tensor
    valid: torch.Tensor
    mask: torch.Tensor


@dataclass
class Estimates:
    """What the update needs from the old policy: the forward inputs, the prompt width (``context``),
    old log-probs and values, the per-token KL and its beta, advantages and returns."""

    inputs: dict[str, torch.Tensor]
    context: int
    old_logp: torch.Tensor
    old_values: torch.Tensor
    kl: torch.Tensor
    kl_coef: float
    advantages: torch.Tensor
    returns: torch.Tensor


def process_mean(accelerator, x: torch.Tensor) -> float:
    """Mean of ``x`` over the elements of every process (0 elements everywhere gives 0)."""
    x = x.detach().float().reshape(-1)
    total = accelerator.gather(torch.stack([x.sum(), torch.tensor(float(x.numel()), device=x.device)]))
    total = total.reshape(-1, 2).sum(dim=0)
    return float(total[0] / total[1].clamp(min=1))


def average(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def iteration_metrics(
    accelerator,
    rollout: Rollout,
    scores: Scores,
    est: Estimates,
    stats: dict[str, list[float]],
    kl: tuple[torch.Tensor, float],
    times: tuple[float, float, float, float],
    prompts_truncated: int,
) -> dict[str, Any]:
    """The metrics line: score, KL, losses and clip rates, explained variance, length, EOS rate, timing.

    ``kl`` is (sequence KL per sample, its mean over valid samples); ``stats`` the per-minibatch
    values of the optimise phase (``ptx_loss`` empty when the ptx term is off).
    """
    acc, valid, any_valid = accelerator, scores.valid, bool(scores.valid.any())
    seq_kl, mean_kl = kl
    t0, t_rollout, t_score, t_end = times
    lengths = rollout.response_mask.sum(dim=1).float()
    tokens = float(acc.gather(lengths.sum().reshape(1)).sum())
    ptx = stats["ptx_loss"]
    return {
        "score": process_mean(acc, scores.raw[valid]) if any_valid else float("nan"),
        "score_std": float(scores.raw[valid].std()) if int(valid.sum()) > 1 else 0.0,
        "reward": process_mean(acc, scores.shaped[valid]) if any_valid else float("nan"),
        "kl": mean_kl,
        "kl_coef": est.kl_coef,
        "non_score_reward": process_mean(acc, (-est.kl_coef * seq_kl)[valid]) if any_valid else 0.0,
        **{key: average(values) for key, values in stats.items() if key != "ptx_loss"},
        "ptx_loss": average(ptx) if ptx else None,
        "explained_variance": pm.explained_variance(est.old_values, est.returns, scores.mask),
        "response_length": process_mean(acc, lengths),
        "eos_rate": process_mean(acc, rollout.has_eos.float()),
        "stop_rate": process_mean(acc, rollout.stopped.float()),
        "reward_none": int(acc.gather((~valid).sum().reshape(1)).sum()),
        "prompts_truncated": prompts_truncated,
        "time_rollout_s": t_rollout - t0,
        "time_score_s": t_score - t_rollout,
        "time_update_s": t_end - t_score,
        "tokens_per_s": tokens / max(t_end - t0, 1e-9),
        "response_tokens": tokens,
    }


def ppo_progress(label: str, max_steps: int, done: int, main: bool):
    """The PPO iterations' progress display on stderr, named ``label`` (main process only; a silent one
    elsewhere); iterations read back from a checkpoint count as cached, outside the ETA."""
    from rlaif.progress import StepProgress

    progress = StepProgress(label, total=max_steps, unit="iterations", stream=None if main else _Silent())
    progress.__enter__()
    if done:
        progress.advance(done, cached=True)
    return progress


def iteration_note(metrics: dict[str, Any]) -> str:
    """What a user watches per iteration: the score, the KL and the throughput of the iteration."""
    return f"score {metrics['score']:.3f}, kl {metrics['kl']:.4f}, {metrics['tokens_per_s']:.0f} tok/s"


class _Silent:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
