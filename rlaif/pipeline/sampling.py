"""Evaluation sampling with one seed per record, derived from the run seed, the metric and the record id.

Why per record: a record's samples then depend neither on its batch neighbours nor on how many records
the set has, so a re-run, or a run with a longer evaluation set, samples the same text for the same
record. Non-guarantee: determinism holds for one engine build on one machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rlaif.engines.base import Sampling
from rlaif.records import derive_seed


def per_record_sampling(seed: int, metric: str, ids: Iterable[str], **settings: Any) -> list[Sampling]:
    """One :class:`Sampling` per record id, each with ``derive_seed(seed, metric, id)``."""
    return [Sampling(seed=derive_seed(seed, metric, i), **settings) for i in ids]
