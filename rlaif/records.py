"""Typed records that flow between stages, and their JSONL storage.

Guarantees:
- every record is a pydantic model with ``extra="forbid"``: a misspelt field in a data file is an error
  naming the file and line, never silently ignored;
- :func:`write_jsonl` is atomic (temp file in the same directory, fsync, rename), so a reader never sees
  a half-written file;
- :func:`pairs_to_dataset` produces TRL's conversational ``prompt``/``chosen``/``rejected`` columns.

Non-guarantees: two processes writing the same file at once are not coordinated (the last rename wins).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlaif.errors import RecordError, describe_validation_error
from rlaif.files import atomic_writer

Role = Literal["system", "user", "assistant"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(Record):
    role: Role
    content: str


Conversation = list[Message]


def as_conversation(prompt: str | list[Message] | list[dict]) -> list[Message]:
    """A plain string becomes one user turn; dicts are validated into messages."""
    if isinstance(prompt, str):
        return [Message(role="user", content=prompt)]
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in prompt]


class PromptRecord(Record):
    """One input prompt for generation (a conversation ending with a user turn)."""

    id: str
    messages: list[Message]
    metadata: dict[str, Any] = Field(default_factory=dict)


class TopLogprob(Record):
    token: str
    token_id: int | None = None
    logprob: float


class TokenLogprob(Record):
    """The sampled token's log-probability, plus the top-k alternatives when requested."""

    token: str
    token_id: int | None = None
    logprob: float
    top: list[TopLogprob] = Field(default_factory=list)


class Completion(Record):
    """One sampled continuation. ``index`` is the sample number within its prompt (0..n-1)."""

    index: int = 0
    text: str
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    cumulative_logprob: float | None = None


class Judgment(Record):
    """One judge decision with everything needed to audit it later.

    ``status`` is ``invalid`` when the judge's output could not be parsed; an invalid judgment carries
    no score/choice and is never turned into a label.
    """

    id: str
    kind: Literal["pointwise", "pairwise", "principle", "custom"]
    judge_model: str
    template: str
    template_hash: str
    prompt_hash: str | None = None
    raw_output: str | list[str]
    status: Literal["ok", "invalid"]
    invalid_reason: str | None = None
    score: float | None = None
    choice: str | None = None
    probabilities: dict[str, float] | None = None
    orders: list[str] = Field(default_factory=list)
    consistent: bool | None = None
    principle: str | None = None
    subject_ids: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class PreferencePair(Record):
    """A chosen/rejected pair with provenance.

    ``soft_label`` is P(chosen is better) where the feedback gives a probability; ``margin`` is the
    score difference (judge points, tests passed, ...) that justified the order.
    """

    id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    soft_label: float | None = None
    margin: float | None = None
    source: str
    round: int = 0
    judgment_ids: list[str] = Field(default_factory=list)
    execution_ids: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class CodeProblem(Record):
    """A programming task with its tests, normalised from HumanEval / MBPP / MBPP+ formats."""

    task_id: str
    prompt: str
    entry_point: str | None = None
    tests: list[str] = Field(default_factory=list)
    test_code: str | None = None
    setup_code: str = ""
    reference_solution: str | None = None
    inputs: list[Any] | None = None
    atol: float = 0.0
    source_format: Literal["humaneval", "mbpp", "mbppplus", "native"] = "native"
    metadata: dict[str, Any] = Field(default_factory=dict)


ExecutionStatus = Literal[
    "passed",
    "failed",
    "runtime_error",
    "syntax_error",
    "timeout",
    "memory_exceeded",
    "killed",
    "sandbox_error",
]


class ExecutionResult(Record):
    """The outcome of running one program against its tests in the sandbox.

    ``per_test`` holds one status per test (same vocabulary as ``status``); ``network_isolated`` is
    False where the sandbox could not create a network namespace (never silently assumed).
    """

    id: str
    task_id: str
    sample_index: int | None = None
    status: ExecutionStatus
    passed: bool
    tests_passed: int = 0
    tests_total: int = 0
    per_test: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    diagnostics: str = ""
    stdout: str = ""
    stderr: str = ""
    network_isolated: bool | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


R = TypeVar("R", bound=BaseModel)


def stable_hash(*parts: str | bytes, length: int = 16) -> str:
    """Content hash used for ids and manifests (sha256, hex, truncated)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()[:length]


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed that depends only on the global seed and the named stage/attempt/index.

    Why here: judges, feedback sources and the pipeline all derive per-request seeds, and each must
    give the same seed for the same names, so there is one function in the lowest layer.
    """
    return int(stable_hash(str(seed), *(str(p) for p in parts)), 16) % (2**31 - 1)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) from a .jsonl or .jsonl.gz file; blank lines are skipped."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: file not found")
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise RecordError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_jsonl(path: str | Path, model: type[R]) -> list[R]:
    """Read and validate every record; the first malformed one raises naming file and line."""
    out = []
    for lineno, obj in iter_json_lines(path):
        try:
            out.append(model.model_validate(obj))
        except ValidationError as exc:
            problem = describe_validation_error(exc, root="(record)")
            raise RecordError(f"{path}:{lineno}: invalid {model.__name__}: {problem}") from None
    return out


def _dump(record: BaseModel | dict) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json(exclude_none=False)
    return json.dumps(record, ensure_ascii=False)


def write_jsonl(path: str | Path, records: Iterable[BaseModel | dict]) -> int:
    """Atomically replace ``path`` with the records; returns the count written."""
    count = 0
    with atomic_writer(path) as fh:
        for rec in records:
            fh.write(_dump(rec) + "\n")
            count += 1
    return count


def pair_to_trl_row(pair: PreferencePair) -> dict[str, Any]:
    """TRL conversational preference format: prompt messages, chosen/rejected assistant turns."""
    row: dict[str, Any] = {
        "prompt": [m.model_dump() for m in pair.prompt],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }
    return row


def pairs_to_dataset(pairs: Iterable[PreferencePair]):
    """A ``datasets.Dataset`` ready for TRL's DPOTrainer / RewardTrainer."""
    from datasets import Dataset

    rows = [pair_to_trl_row(p) for p in pairs]
    if not rows:
        raise RecordError("no preference pairs to train on (the pair file is empty)")
    return Dataset.from_list(rows)


def load_pairs(paths: str | Path | Iterable[str | Path]) -> list[PreferencePair]:
    """Read one or several pair files."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[PreferencePair] = []
    for p in paths:
        out.extend(read_jsonl(p, PreferencePair))
    return out
