"""Load prompts for feedback sources from the formats people actually have.

Formats (``format="auto"`` picks one from the first record's fields):
- ``jsonl``: ``{"id"?: str, "prompt": str}`` or ``{"id"?: str, "messages": [{"role", "content"}, ...]}``;
  other fields are kept in ``metadata``. Missing ids become ``<file stem>-<line>``.
- ``hh``: Anthropic HH-RLHF transcripts (``chosen``/``rejected`` or ``transcript`` holding
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``), .jsonl or .jsonl.gz. The prompt is the conversation up to
  (not including) the final assistant turn of ``chosen`` (``chosen`` and ``rejected`` share it).
  ``metadata["format"] = "hh_transcript"`` lets RLCD re-render it in transcript form.
- ``mt_bench``: MT-Bench ``question.jsonl`` (``question_id``, ``turns``); the prompt is the first turn.

Guarantees: every prompt conversation ends with a user turn; errors name file, line and field; an
empty file (or a ``limit`` that selects nothing) is an error, never an empty run; ids are unique.
Non-guarantee: malformed transcripts are an error by default; with ``skip_malformed=True`` they are
skipped and listed in ``PromptFile.skipped`` (line, reason), never repaired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from rlaif.errors import RecordError, describe_validation_error
from rlaif.records import Message, PromptRecord, iter_json_lines

PromptFormat = Literal["auto", "jsonl", "hh", "mt_bench"]

_HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


@dataclass
class PromptFile:
    """Prompts read from one file, plus the lines skipped (only with ``skip_malformed``)."""

    path: Path
    format: str
    records: list[PromptRecord]
    skipped: list[tuple[int, str]] = field(default_factory=list)


def parse_hh_transcript(text: str) -> list[Message]:
    """Split an HH transcript into turns; raises ValueError (with the reason) if it does not alternate
    Human/Assistant starting with Human."""
    if not isinstance(text, str):
        raise ValueError("transcript is not a string")
    if text.startswith(("Human:", "Assistant:")):
        text = "\n\n" + text
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise ValueError("text before the first 'Human:' turn")
    roles, contents = parts[1::2], parts[2::2]
    if not roles:
        raise ValueError("no '\\n\\nHuman:' turn found")
    messages = []
    for i, (role, content) in enumerate(zip(roles, contents, strict=True)):
        expected = "Human" if i % 2 == 0 else "Assistant"
        if role != expected:
            raise ValueError(
                f"turn {i + 1} is '{role}:' where '{expected}:' was expected (turns must alternate)"
            )
        messages.append(Message(role=_HH_ROLE[role], content=content.strip()))
    return messages


def hh_prompt(text: str) -> list[Message]:
    """The conversation up to the final assistant turn (which is the response being compared)."""
    messages = parse_hh_transcript(text)
    if messages[-1].role == "assistant":
        messages = messages[:-1]
    if not messages or messages[-1].role != "user" or not messages[-1].content:
        raise ValueError("no non-empty human turn before the final assistant turn")
    return messages


def _detect(obj: dict[str, Any]) -> str:
    if "messages" in obj or "prompt" in obj:
        return "jsonl"
    if "chosen" in obj or "transcript" in obj:
        return "hh"
    if "turns" in obj and "question_id" in obj:
        return "mt_bench"
    raise ValueError(
        "cannot tell the format: expected 'prompt' or 'messages' (jsonl), 'chosen'/'transcript' "
        "(HH), or 'question_id' + 'turns' (MT-Bench)"
    )


def _from_jsonl(obj: dict[str, Any], stem: str, lineno: int) -> PromptRecord:
    if "prompt" in obj and "messages" in obj:
        raise ValueError("has both 'prompt' and 'messages' (give one)")
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise ValueError("field 'prompt': must be a non-empty string")
        messages = [Message(role="user", content=obj["prompt"])]
    elif "messages" in obj:
        if not isinstance(obj["messages"], list) or not obj["messages"]:
            raise ValueError("field 'messages': must be a non-empty list of {role, content}")
        messages = []
        for i, m in enumerate(obj["messages"]):
            try:
                messages.append(Message.model_validate(m))
            except ValidationError as exc:
                problem = describe_validation_error(exc, limit=1, prefix=f"messages[{i}].")
                raise ValueError(problem) from None
        if messages[-1].role != "user":
            raise ValueError("field 'messages': the last message must be a user turn (the prompt to answer)")
    else:
        raise ValueError("needs a 'prompt' or a 'messages' field")
    rid = obj.get("id", f"{stem}-{lineno}")
    if not isinstance(rid, (str, int)):
        raise ValueError("field 'id': must be a string")
    metadata = dict(obj.get("metadata") or {})
    if not isinstance(metadata, dict):
        raise ValueError("field 'metadata': must be an object")
    for key, value in obj.items():
        if key not in ("id", "prompt", "messages", "metadata"):
            metadata[key] = value
    return PromptRecord(id=str(rid), messages=messages, metadata=metadata)


def _from_hh(obj: dict[str, Any], stem: str, lineno: int) -> PromptRecord:
    key = "chosen" if "chosen" in obj else "transcript"
    if key not in obj:
        raise ValueError("needs a 'chosen' (or 'transcript') field")
    try:
        messages = hh_prompt(obj[key])
    except ValueError as exc:
        raise ValueError(f"field '{key}': {exc}") from None
    rid = str(obj.get("id", f"{stem}-{lineno}"))
    return PromptRecord(id=rid, messages=messages, metadata={"format": "hh_transcript", "line": lineno})


def _from_mt_bench(obj: dict[str, Any], stem: str, lineno: int) -> PromptRecord:
    turns = obj.get("turns")
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], str) or not turns[0].strip():
        raise ValueError("field 'turns': must be a non-empty list of strings")
    if "question_id" not in obj:
        raise ValueError("needs a 'question_id' field")
    meta = {"format": "mt_bench", "question_id": obj["question_id"]}
    if "category" in obj:
        meta["category"] = obj["category"]
    return PromptRecord(
        id=f"mt_bench-{obj['question_id']}", messages=[Message(role="user", content=turns[0])], metadata=meta
    )


_PARSERS = {"jsonl": _from_jsonl, "hh": _from_hh, "mt_bench": _from_mt_bench}


def read_prompt_file(
    path: str | Path,
    *,
    format: PromptFormat = "auto",
    limit: int | None = None,
    skip_malformed: bool = False,
) -> PromptFile:
    """Read prompts (the first ``limit`` good ones when given)."""
    path = Path(path)
    if format not in ("auto", *_PARSERS):
        raise RecordError(f"{path}: unknown prompt format '{format}' (use auto, jsonl, hh or mt_bench)")
    if limit is not None and limit < 1:
        raise RecordError(f"{path}: limit must be at least 1, got {limit}")
    records: list[PromptRecord] = []
    skipped: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    fmt = None if format == "auto" else format
    stem = path.name.split(".")[0]
    for lineno, obj in iter_json_lines(path):
        try:
            if fmt is None:
                fmt = _detect(obj)
            rec = _PARSERS[fmt](obj, stem, lineno)
        except ValueError as exc:
            if skip_malformed and fmt is not None:
                skipped.append((lineno, str(exc)))
                continue
            raise RecordError(f"{path}:{lineno}: {exc}") from None
        if rec.id in seen:
            raise RecordError(
                f"{path}:{lineno}: field 'id': duplicate id '{rec.id}' (first on line {seen[rec.id]})"
            )
        seen[rec.id] = lineno
        records.append(rec)
        if limit is not None and len(records) >= limit:
            break
    if not records:
        why = f"all {len(skipped)} records were malformed" if skipped else "the file has no records"
        raise RecordError(f"{path}: no prompts to use ({why})")
    return PromptFile(path=path, format=fmt or format, records=records, skipped=skipped)


def load_prompts(
    path: str | Path, *, format: PromptFormat = "auto", limit: int | None = None, skip_malformed: bool = False
) -> list[PromptRecord]:
    """The prompts of one file (see :func:`read_prompt_file` for the skipped-line report)."""
    return read_prompt_file(path, format=format, limit=limit, skip_malformed=skip_malformed).records
