"""What a run decides for one call of a feedback source, as opposed to what its config says.

A source is called as ``source(prompts, engine, options, context, judge_engine=...)``: ``options`` is
the source's already validated config model (what the user wrote), ``context`` is a
:class:`SourceContext` (what the run decides: the seed of this chunk, the round, the adapter the
policy engine really serves, the chunk number). Keeping the two apart means a config model never
carries a field the user must not set, and the caller never sniffs a model's fields to inject values.

Guarantee: a :class:`SourceContext` is immutable and holds plain values (JSON-able), so it can be
recorded as provenance as is. Non-guarantee: nothing checks that ``adapter`` exists on disk; the
engine that serves it does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class SourceContext:
    """Run-time values of one source call (never part of the user's config)."""

    seed: int
    round: int
    adapter: str | None
    chunk: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_CONTEXT = SourceContext(seed=0, round=0, adapter=None, chunk=0)
"""The context of a call outside a run (a library user calling a source once)."""


def apply_context(config: Any, context: SourceContext | None) -> Any:
    """A config model with ``seed``/``round``/``adapter`` taken from ``context`` where it has those fields.

    Why: the built-in sources still read these three from their config model; this bridges them to
    the context argument until each reads ``context`` itself. ``context=None`` keeps the config as is.
    """
    if context is None or not isinstance(config, BaseModel):
        return config
    fields = type(config).model_fields
    update = {k: v for k, v in context.as_dict().items() if k in fields and k != "chunk"}
    return config.model_copy(update=update) if update else config
