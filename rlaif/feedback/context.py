"""The run-time values a feedback source is called with (``SourceContext``).

Why a separate argument: seed, round and adapter are decided by the run (per chunk, per round, by
what the engine serves), not by the user's config; passing them next to the validated options keeps
one owner per value and lets a config be validated once, before any chunk runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceContext:
    """seed: this call's seed (per chunk); round: the iteration recorded on every pair; adapter: the
    LoRA adapter the policy engine serves (None: the base model); chunk: the chunk's index."""

    seed: int
    round: int
    adapter: str | None
    chunk: int
