"""Sampling valid texts (feedback sources): per-request seeds, batched retries, counted failures.

Guarantees (on top of :func:`rlaif.generation.retry.sample_until_valid`, which does the batching):
- request ``i`` is sampled with seed ``derive_seed(seed, stage, keys[i], attempt)``, so a prompt's
  samples depend on the seed, the stage, its own key and the attempt, never on its batch neighbours;
- an unfilled slot keeps ``text=None`` with the reason of its last failure; a request longer than the
  context is never sent (reason ``prompt_too_long``);
- with ``stats``, every call, retried request and invalid output is counted under ``<stage>_...``.
Non-guarantee: determinism holds for one engine build on one machine (kernels differ across devices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rlaif.engines.base import Engine, PromptInput, Sampling
from rlaif.generation.output_rules import OutputRules, clean_output
from rlaif.generation.retry import sample_until_valid
from rlaif.records import Completion, derive_seed


class Counts(Protocol):
    """Where failures are counted (a source's ``PairStats``): ``count(name, n)``."""

    def count(self, name: str, n: int = 1) -> None: ...


@dataclass
class Sampled:
    """One request's accepted text (or None) and how it was obtained."""

    text: str | None
    seed: int | None
    attempts: int
    reason: str = ""
    raw: str = ""


def sample_n_with_retries(
    engine: Engine,
    requests: Sequence[PromptInput],
    sampling: Sampling,
    rules: OutputRules,
    *,
    n: int,
    max_retries: int,
    seed: int,
    stage: str,
    keys: Sequence[str] | None = None,
    adapter: str | None = None,
    stats: Counts | None = None,
) -> list[list[Sampled]]:
    """Sample ``n`` valid texts per request; each attempt fills the still invalid slots in order."""
    keys = [str(i) for i in range(len(requests))] if keys is None else [str(k) for k in keys]
    if len(keys) != len(requests):
        raise ValueError(f"{len(keys)} keys for {len(requests)} requests")
    results = [[Sampled(text=None, seed=None, attempts=0) for _ in range(n)] for _ in requests]
    seeds: dict[int, int] = {}

    def samplings(pending: list[int], attempt: int) -> list[Sampling]:
        seeds.update({i: derive_seed(seed, stage, keys[i], attempt) for i in pending})
        return [sampling.model_copy(update={"n": n, "seed": seeds[i]}) for i in pending]

    def take(i: int, completions: list[Completion], attempt: int) -> bool:
        slots = [k for k, s in enumerate(results[i]) if s.text is None]
        for comp in completions:
            if not slots:
                break
            text, reason = clean_output(comp.text, rules, comp.finish_reason)
            results[i][slots[0]] = Sampled(text, seeds[i], attempt + 1, reason, raw=comp.text)
            if text is None:
                _count(stats, f"{stage}_invalid_{reason}")
            else:
                slots.pop(0)
        return bool(slots)

    report = sample_until_valid(
        engine, requests, samplings=samplings, take=take, max_retries=max_retries, adapter=adapter
    )
    for i, detail in report.too_long.items():
        results[i] = [Sampled(text=None, seed=None, attempts=0, reason="prompt_too_long", raw=detail)] * n
    if report.too_long:
        _count(stats, f"{stage}_prompt_too_long", len(report.too_long))
    _count(stats, f"{stage}_generate_calls", report.calls)
    _count(stats, f"{stage}_retried_requests", report.retried_requests)
    return results


def sample_with_retries(
    engine: Engine, requests: Sequence[PromptInput], sampling: Sampling, rules: OutputRules, **options: Any
) -> list[Sampled]:
    """One valid text per request; ``options`` are those of :func:`sample_n_with_retries` but ``n``."""
    return [slots[0] for slots in sample_n_with_retries(engine, requests, sampling, rules, n=1, **options)]


def failure(reason: str, sampled: Sampled, round_: int | None = None) -> tuple[str, str]:
    """Drop reason and detail for a request that yielded no valid text (``prompt_too_long`` wins)."""
    where = f"round {round_}: " if round_ is not None else ""
    if sampled.reason == "prompt_too_long":
        return "prompt_too_long", where + sampled.raw
    return reason, f"{where}{sampled.reason} after {sampled.attempts} attempt(s)"


def _count(stats: Counts | None, name: str, n: int = 1) -> None:
    if stats is not None and n:
        stats.count(name, n)
