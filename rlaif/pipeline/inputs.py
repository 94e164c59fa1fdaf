"""A run's input data: prompt files, code problems and evaluation prompts, read the same way by
``rlaif validate`` (up front, before any engine starts) and by the stages.

Guarantees:
- a malformed record in a jsonl / hh / mtbench file is skipped and counted when the source says
  ``malformed: skip`` (the default: public data sets such as HH contain a few transcripts whose turns do
  not alternate), or stops the run with an error naming file and line with ``malformed: error``; the
  skipped lines are returned with their reasons so stats and the report can show them;
- ``limit`` counts usable records, so a skipped record never shortens the requested set;
- a source that selects nothing is an error, never an empty run.

Non-guarantees: code problem files (``kind: code``) and local HF datasets are always strict; a record
is never repaired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rlaif.code.problems import load_problems
from rlaif.config import RunConfig
from rlaif.config.stages import PromptSource
from rlaif.errors import ConfigError
from rlaif.feedback.prompts_io import read_prompt_file
from rlaif.records import PromptRecord, as_conversation
from rlaif.tasks.catalog import problem_set


@dataclass
class SourceData:
    """What one prompt source yielded: the items in file order and the records skipped as malformed."""

    items: list
    skipped: list[tuple[int, str]] = field(default_factory=list)
    path: str | None = None

    def skipped_summary(self) -> dict:
        """For stats and the report: how many, and the first few with their line and reason."""
        return {
            "skipped_malformed": len(self.skipped),
            "skipped_examples": [f"{self.path}:{line}: {why}" for line, why in self.skipped[:3]],
        }


def read_prompt_source(src: PromptSource, where: str) -> SourceData:
    """PromptRecords (text sources) or CodeProblems (code sources), in file order."""
    data = _read(src, where)
    items = data.items
    if src.id_range is not None:
        lo, hi = src.id_range

        def number(item) -> int | None:
            m = re.search(r"(\d+)$", str(getattr(item, "task_id", None) or getattr(item, "id", "")))
            return int(m.group(1)) if m else None

        items = [it for it in items if (n := number(it)) is not None and lo <= n <= hi]
        if not items:
            raise ConfigError(f"{where}.id_range {list(src.id_range)} selects no records from {src.path}")
    data.items = items[: src.limit] if src.limit else items
    return data


def load_prompt_source(src: PromptSource, where: str) -> list:
    """The items of :func:`read_prompt_source`, without the skipped-record report."""
    return read_prompt_source(src, where).items


def is_code_run(cfg: RunConfig) -> bool:
    """A run on code problems (a source that needs the sandbox, or code prompts): the final round rewards
    by tests."""
    from rlaif.feedback.registry import describe

    return describe(cfg.feedback.source).needs_sandbox or cfg.prompts.kind in ("code", "demo_code")


def _read(src: PromptSource, where: str) -> SourceData:
    if src.kind == "demo_code":
        return SourceData(problem_set(src.kind)(src.split))
    if not src.path:
        raise ConfigError(f"{where}.path is required for kind={src.kind}")
    if src.kind == "code":
        return SourceData(load_problems(src.path), path=src.path)
    if src.kind == "hf_dataset":
        return SourceData(_hf_dataset(src.path), path=src.path)

    fmt = {"jsonl": "jsonl", "hh": "hh", "mtbench": "mt_bench"}[src.kind]
    got = read_prompt_file(
        src.path,
        format=fmt,
        limit=None if src.id_range else src.limit,
        skip_malformed=src.malformed == "skip",
    )
    return SourceData(got.records, got.skipped, path=src.path)


def _hf_dataset(path: str) -> list:
    from datasets import load_from_disk

    ds = load_from_disk(path)
    out = []
    for i, row in enumerate(ds):
        if "messages" in row:
            msgs = as_conversation(row["messages"])
        elif "prompt" in row:
            msgs = as_conversation(row["prompt"])
        else:
            raise ConfigError(f"{path}: row {i} has neither 'prompt' nor 'messages'")
        out.append(PromptRecord(id=str(row.get("id", f"row-{i}")), messages=msgs))
    return out
