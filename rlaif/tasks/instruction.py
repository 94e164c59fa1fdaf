"""The instruction task: prompts that list verifiable instructions, checked by :mod:`rlaif.instructions`.

Each record is a :class:`~rlaif.records.PromptRecord` whose ``metadata["instructions"]`` lists the
instructions its reply must follow. A reply passes only if it follows every one (``score`` is the
fraction it follows). Guarantees: a malformed instruction is a :class:`~rlaif.errors.RecordError`
naming the prompt, never a silent pass or fail; a prompt without instructions gets status
``unscored`` and never passes (the pass rate counts it apart, as :func:`rlaif.instructions.pass_summary`
does).

``require_answer=True`` also fails a reply that does not answer its request at all
(:func:`rlaif.instructions.answers_request`: too few words of its own, or none of the request's words):
status ``not_answered``, score 0. Why: the checker alone passes "<<Title>> Sure." for a title
instruction, and a policy trained on it learns such replies. The answer check is literal: it does not
judge whether the answer is right or helpful, only that it is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.errors import RlaifError
from rlaif.instructions import answers_request, check, request_of
from rlaif.records import Message, PromptRecord

from .base import Task, Verdict, completion_text


class InstructionTask(Task):
    """``records`` may be empty for a reward: each rollout then carries its own ``instructions`` column
    (and, for ``require_answer``, its prompt and, where the prompt file has one, its ``task`` column)."""

    name = "instructions"
    key_column = "instructions"

    def __init__(self, records: Sequence[PromptRecord] = (), *, require_answer: bool = False):
        super().__init__(records)
        self.require_answer = require_answer

    def reward_record(self, index: int, columns: dict[str, Sequence[Any]]) -> PromptRecord:
        specs = columns.get("instructions")
        if specs is None or index >= len(specs):
            raise RlaifError(
                "instructions reward needs an 'instructions' column with one list per completion"
            )
        metadata: dict[str, Any] = {"instructions": specs[index] or []}
        tasks = columns.get("task")
        if tasks is not None and index < len(tasks) and isinstance(tasks[index], str):
            metadata["task"] = tasks[index]
        prompts = columns.get("prompts")
        prompt = prompts[index] if prompts is not None and index < len(prompts) else None
        if isinstance(prompt, str):
            messages = [Message(role="user", content=prompt)]
        elif isinstance(prompt, list | tuple) and prompt:
            messages = [Message.model_validate(m) for m in prompt]
        else:
            messages = [Message(role="user", content="")]
        return PromptRecord(id=f"rollout {index}", messages=messages, metadata=metadata)

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
        if self.require_answer:
            request = request_of(record.metadata, record.messages)
            if not request.strip():
                raise RlaifError(
                    f"prompt {record.id}: require_answer needs the request (a 'task' field or the prompt)"
                )
            if not answers_request(text, request, specs):
                return Verdict(False, 0.0, "not_answered", f"does not answer the request {request!r}")
        broken = [s["kind"] for s, ok in zip(specs, followed, strict=True) if not ok]
        return Verdict(
            passed=not broken,
            score=sum(followed) / len(followed),
            status="failed" if broken else "passed",
            detail=f"not followed: {', '.join(broken)}" if broken else "",
        )
