"""What a feedback source returns (``FeedbackResult``) and how its pairs are finished and written.

Guarantees: every input prompt either yields exactly one pair or is counted under one drop reason, so
``stats.pairs_out + sum(stats.drops.values()) == stats.prompts_in`` once :func:`finish` ran; each drop
is also listed with the prompt id in ``FeedbackResult.dropped``; :meth:`FeedbackResult.write` writes
every file atomically. Pair ids depend only on source, round, prompt id and the two texts.
Non-guarantee: ``finish`` does not check that the source counted its own drops correctly
(``run_source`` checks the balance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlaif.files import atomic_write_text
from rlaif.pairs import PairStats, length_summary
from rlaif.records import Judgment, Message, PreferencePair, PromptRecord, stable_hash, write_jsonl


class SFTRecord(BaseModel):
    """A supervised example (prompt -> completion), e.g. an SL-CAI final revision."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: list[Message]
    completion: str
    source: str
    round: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)


class DroppedPrompt(BaseModel):
    """Why one input prompt produced no pair (kept so that no drop is silent)."""

    model_config = ConfigDict(extra="forbid")

    prompt_id: str
    reason: str
    detail: str = ""


@dataclass
class FeedbackResult:
    """Everything a source produced: pairs plus the records needed to audit or reuse them."""

    pairs: list[PreferencePair]
    stats: PairStats
    judgments: list[Judgment] = field(default_factory=list)
    dropped: list[DroppedPrompt] = field(default_factory=list)
    sft_records: list[SFTRecord] = field(default_factory=list)
    new_prompts: list[PromptRecord] = field(default_factory=list)

    def drop(self, prompt_id: str, reason: str, detail: str = "") -> None:
        """Count a prompt that yields no pair, under ``reason``."""
        self.stats.add_drop(reason)
        self.dropped.append(DroppedPrompt(prompt_id=prompt_id, reason=reason, detail=detail))

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write pairs.jsonl, judgments.jsonl, dropped.jsonl, stats.json (+ sft.jsonl, new_prompts.jsonl
        when present) atomically; returns the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        records = {"pairs": self.pairs, "judgments": self.judgments, "dropped": self.dropped}
        optional = {"sft": self.sft_records, "new_prompts": self.new_prompts}
        records.update({name: rows for name, rows in optional.items() if rows})
        paths = {name: out / f"{name}.jsonl" for name in records}
        for name, rows in records.items():
            write_jsonl(paths[name], rows)
        paths["stats"] = out / "stats.json"
        atomic_write_text(paths["stats"], self.stats.model_dump_json(indent=2) + "\n")
        return paths


def new_result(source: str, prompts: list[PromptRecord]) -> FeedbackResult:
    """An empty result counting ``prompts`` as the input."""
    return FeedbackResult(pairs=[], stats=PairStats(source=source, prompts_in=len(prompts)))


def pair_id(source: str, round_: int, prompt_id: str, chosen: str, rejected: str) -> str:
    return f"{source}-{stable_hash(source, str(round_), prompt_id, chosen, rejected)}"


def finish(result: FeedbackResult, pairs: list[PreferencePair]) -> FeedbackResult:
    """Keep every pair the source built and fill pairs_out and length stats.

    Why no filter here: a run filters pairs in one place, the pairs stage (``pairs.options``); a source
    that dropped identical or duplicate pairs with its own defaults would make ``drop_identical: false``
    or ``dedup: false`` there ineffective."""
    result.pairs = list(pairs)
    result.stats.pairs_out = len(result.pairs)
    result.stats.length = length_summary(result.pairs)
    return result
