"""Retry-until-valid and per-request seeds: the one sampling loop judges and feedback sources share.

Why one loop: a pointwise judge re-asks for judgments that could not be parsed, and a feedback source
re-samples outputs that are empty or cut off; both send every request that still needs samples in one
``generate`` call per attempt, skip prompts longer than the model's context, and stop after
``max_retries`` extra attempts. The callers differ only in which settings (seed, ``n``) an attempt
uses and in what makes a completion valid, so those two are the loop's arguments.

Guarantees: one ``generate`` call per attempt, holding only the requests still pending, in input
order; a request longer than the context is never sent (reported in ``too_long``, retrying cannot
help); at most ``max_retries + 1`` attempts.
Non-guarantee: the loop does not decide what is valid or record anything; ``take`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlaif.engines.base import Engine, PromptInput, Sampling
from rlaif.generation.context import context_overflow
from rlaif.records import Completion, Message, derive_seed, stable_hash

SamplingsFor = Callable[[list[int], int], Sequence[Sampling]]
"""(pending request indices, attempt) -> one Sampling per pending request."""

TakeCompletions = Callable[[int, list[Completion], int], bool]
"""(request index, its completions, attempt) -> True while the request still needs samples."""


@dataclass
class RetryReport:
    """What the loop did: requests never sent (index -> reason), calls made, retried requests."""

    too_long: dict[int, str] = field(default_factory=dict)
    calls: int = 0
    retried_requests: int = 0


def generate_each(
    engine: Engine, requests: Sequence[PromptInput], samplings: Sequence[Sampling], adapter: str | None
) -> list[list[Completion]]:
    """One ``generate`` call with per-request settings (one shared Sampling when they are all equal).

    Why per request: each request's seed is derived from the global seed and the request's own key, so
    a prompt's samples do not depend on its batch neighbours, and two nearly identical prompts (RLCD's
    positive/negative) get independent samples instead of one shared random stream.
    """
    if not requests:
        return []
    first = samplings[0]
    if all(s == first for s in samplings):
        outputs = engine.generate(list(requests), first, adapter=adapter)
    else:
        outputs = engine.generate(list(requests), list(samplings), adapter=adapter)  # type: ignore[arg-type]
    if len(outputs) != len(requests):
        raise RuntimeError(f"engine returned {len(outputs)} results for {len(requests)} prompts")
    return outputs


def sample_until_valid(
    engine: Engine,
    requests: Sequence[PromptInput],
    *,
    samplings: SamplingsFor,
    take: TakeCompletions,
    max_retries: int,
    adapter: str | None,
) -> RetryReport:
    """Sample every request, then re-sample (batched) those ``take`` says still need samples."""
    report = RetryReport(too_long=context_overflow(engine, requests))
    pending = [i for i in range(len(requests)) if i not in report.too_long]
    for attempt in range(max_retries + 1):
        if not pending:
            break
        outputs = generate_each(engine, [requests[i] for i in pending], samplings(pending, attempt), adapter)
        report.calls += 1
        if attempt:
            report.retried_requests += len(pending)
        pending = [
            i for i, completions in zip(pending, outputs, strict=True) if take(i, completions, attempt)
        ]
    return report


class PerRequestSeeds:
    """An engine view that gives each request of a seeded call its own seed.

    Why: judges send one Sampling (one seed) for a whole call, so every judged item would share one
    random stream and its sampled judgments would be correlated across candidates (with a weak model,
    all candidates get the same verdicts and every pair is a tie). Here each request's seed is derived
    from the call's seed and the request's content, so judgments of different items are independent
    draws while the run stays deterministic. Unseeded calls pass through unchanged; everything else
    (model_name, tokenizer, ...) is the wrapped engine's.
    """

    def __init__(self, engine: Engine):
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def generate(
        self, prompts: Sequence[PromptInput], sampling: Sampling, adapter: str | None = None
    ) -> list[list[Completion]]:
        if not isinstance(sampling, Sampling) or sampling.seed is None or len(prompts) <= 1:
            return self._engine.generate(prompts, sampling, adapter=adapter)
        per_request = [
            sampling.model_copy(update={"seed": derive_seed(sampling.seed, content_key(p))}) for p in prompts
        ]
        return generate_each(self._engine, prompts, per_request, adapter)


def content_key(prompt: PromptInput) -> str:
    """A hash of a request's text (string prompt or conversation), for content-derived seeds."""
    if isinstance(prompt, str):
        return stable_hash(prompt)
    return stable_hash(*(f"{m.role}\x00{m.content}" if isinstance(m, Message) else str(m) for m in prompt))
