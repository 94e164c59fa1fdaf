"""What a run decides for one call of a feedback source, as opposed to what its config says.

A source is called as ``source(prompts, engine, options, context, judge_engine=...)``: ``options`` is
the source's already validated config model (what the user wrote), ``context`` is a
:class:`SourceContext` (what the run decides: the seed of this chunk, the round, the adapter the
policy engine really serves, the chunk number). Keeping the two apart means a config model never
carries a field the user must not set, the caller never sniffs a model's fields to inject values, and
a config is validated once, before any chunk runs.

Guarantee: a :class:`SourceContext` is immutable and holds plain values (JSON-able), so it can be
recorded as provenance as is. Non-guarantee: nothing checks that ``adapter`` exists on disk; the
engine that serves it does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SourceContext:
    """seed: this call's seed (per chunk); round: the iteration recorded on every pair; adapter: the
    LoRA adapter the policy engine serves (None: the base model); chunk: the chunk's index; judge: the
    run's judge for a source with a judge slot, as a :data:`rlaif.judges.spec.JudgeSpec` mapping
    (None: the source's declared default)."""

    seed: int
    round: int
    adapter: str | None
    chunk: int
    judge: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_CONTEXT = SourceContext(seed=0, round=0, adapter=None, chunk=0)
"""The context of a call outside a run (a library user calling a source once)."""
