"""What a verifiable task is: records, the prompt each record shows the policy, and a verifier.

A :class:`Task` answers one question for every (record, completion): did the completion do what the
record asks? The answer is a :class:`Verdict`. Evaluation metrics (pass@k, the instruction pass rate),
the final round's verifier reward and the verifier-gated feedback source (RLCF for code) are all built
on this one interface, so a new kind of verifiable task plugs into all three at once.

Guarantees: ``verify_many`` returns exactly one verdict per item, in input order; a verdict whose
``status`` is in :data:`NOT_THE_MODELS_FAULT` (the verifier broke, or the record itself is broken)
carries no judgement of the completion: rewards are None for it and metrics count it apart.
Non-guarantee: a verdict is only as good as the record's checks (a test that asserts little passes much).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlaif.errors import RlaifError
from rlaif.records import Message

NOT_THE_MODELS_FAULT = frozenset({"sandbox_error", "bad_problem"})
"""Statuses that say nothing about the completion: the verifier failed, or the record is broken."""


@dataclass(frozen=True)
class Verdict:
    """One completion checked against one record.

    ``passed``: the completion does everything the record asks; ``score``: the fraction of the
    record's checks it satisfies (tests passed, instructions followed), in [0, 1]; ``status``: the
    verifier's word for the outcome (the sandbox's statuses for code, ``passed``/``failed`` for
    instructions, ``bad_problem`` for a broken record); ``detail``: why, for people; ``evidence``: the
    verifier's own record (an :class:`~rlaif.records.ExecutionResult` for code), kept for provenance.
    """

    passed: bool
    score: float
    status: str
    detail: str = ""
    evidence: Any = None

    @property
    def counts(self) -> bool:
        """False where the verdict says nothing about the completion (see :data:`NOT_THE_MODELS_FAULT`)."""
        return self.status not in NOT_THE_MODELS_FAULT


class Task:
    """Records plus a verifier. Subclasses set ``name`` and implement ``key``, ``prompt`` and
    ``verify``; ``verify_many`` may be overridden to batch (the code task runs one sandbox batch)."""

    name = "task"

    def __init__(self, records: Sequence[Any]):
        self.records = list(records)
        self._by_key = {self.key(r): r for r in self.records}

    def key(self, record: Any) -> str:
        raise NotImplementedError

    def prompt(self, record: Any) -> list[Message]:
        """The conversation the policy answers for ``record``."""
        raise NotImplementedError

    def verify(self, record: Any, completion: Any) -> Verdict:
        raise NotImplementedError

    def answer(self, text: str) -> str:
        """A sampled candidate as it is verified and paired (the code task closes its code block)."""
        return text

    def canonical(self, record: Any, text: str) -> str:
        """The text two candidates must share to count as the same (de-duplication)."""
        return "\n".join(line.rstrip() for line in text.strip().splitlines())

    def verify_many(
        self, items: Sequence[tuple[Any, Any]], sample_indices: Sequence[int | None] | None = None
    ) -> list[Verdict]:
        """One verdict per (record, completion), in order; ``sample_indices`` name the samples where
        the verifier records them (the code task's job ids)."""
        return [self.verify(r, c) for r, c in items]

    key_column = "id"
    """The reward-function column (a prompt record's metadata key) that names each rollout's record."""

    def reward_record(self, index: int, columns: dict[str, Sequence[Any]]) -> Any:
        """The record rollout ``index`` answers, from the reward call's columns (TRL passes the
        dataset's columns as lists aligned with the completions)."""
        keys = columns.get(self.key_column)
        if keys is None or index >= len(keys):
            raise RlaifError(
                f"{self.name} reward needs a '{self.key_column}' column with one value per completion"
            )
        return self.record(keys[index])

    def record(self, key: Any) -> Any:
        """The record with this key; an unknown key is an error naming the task."""
        try:
            return self._by_key[str(key)]
        except KeyError:
            raise RlaifError(f"{self.name} task: unknown {self.key_column} {key!r}") from None

    def close(self) -> None:
        """Release what the verifier holds (a sandbox pool the task started itself)."""


def completion_text(completion: Any) -> str:
    """TRL gives plain strings, or conversations (the last assistant turn's content); engines give
    :class:`~rlaif.records.Completion` objects (their ``text``)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    text = getattr(completion, "text", None)
    if isinstance(text, str):
        return text
    raise RlaifError(f"cannot read a completion of type {type(completion).__name__}")
