"""The instruction task: prompts that list verifiable instructions, checked by :mod:`rlaif.instructions`.

Each record is a :class:`~rlaif.records.PromptRecord` whose ``metadata["instructions"]`` lists the
instructions its reply must follow. A reply passes only if it follows every one (``score`` is the
fraction it follows). Guarantees: a malformed instruction is a :class:`~rlaif.errors.RecordError`
naming the prompt, never a silent pass or fail; a prompt without instructions gets status
``unscored`` and never passes (the pass rate counts it apart, as :func:`rlaif.instructions.pass_summary`
does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.errors import RlaifError
from rlaif.instructions import check
from rlaif.records import Message, PromptRecord

from .base import Task, Verdict, completion_text


class InstructionTask(Task):
    """``records`` may be empty for a reward: each rollout then carries its own ``instructions`` column."""

    name = "instructions"
    key_column = "instructions"

    def __init__(self, records: Sequence[PromptRecord] = ()):
        super().__init__(records)

    def reward_record(self, index: int, columns: dict[str, Sequence[Any]]) -> PromptRecord:
        specs = columns.get("instructions")
        if specs is None or index >= len(specs):
            raise RlaifError(
                "instructions reward needs an 'instructions' column with one list per completion"
            )
        return PromptRecord(id=f"rollout {index}", messages=[Message(role="user", content="")],
                            metadata={"instructions": specs[index] or []})  # fmt: skip

    def key(self, record: PromptRecord) -> str:
        return str(record.id)

    def prompt(self, record: PromptRecord) -> list[Message]:
        return list(record.messages)

    def verify(self, record: PromptRecord, completion: Any) -> Verdict:
        specs = record.metadata.get("instructions") or []
        if not specs:
            return Verdict(False, 0.0, "unscored", "the prompt lists no instructions")
        text = completion_text(completion)
        followed = [check(text, s, where=f"prompt {record.id}") for s in specs]
        broken = [s["kind"] for s, ok in zip(specs, followed, strict=True) if not ok]
        return Verdict(
            passed=not broken,
            score=sum(followed) / len(followed),
            status="failed" if broken else "passed",
            detail=f"not followed: {', '.join(broken)}" if broken else "",
        )
