"""Typed stage results: what each stage returns, the manifest stores (as JSON) and the next stage reads.

One model per kind of result (build, feedback, pairs, train, eval; the registry,
:mod:`rlaif.pipeline.stage_kinds`, names each stage kind's), each with typed ``outputs`` (paths other
stages read), ``counts`` (shown in the event log and the report) and the extras of that kind.

Guarantees: :meth:`StageSummary.to_json` writes the same JSON keys the report and earlier run
directories use (``outputs``, ``counts``, ``drops``, ``length``, ``metrics``, ...; unset optional keys
are left out); :func:`summary_from_json` reads a manifest's summary back into its model, and returns None
for one that does not fit (an older or hand-edited manifest), which makes the runner re-run that stage
instead of trusting it. Non-guarantee: the free-form parts (``metrics``, ``stats``) are typed only as
JSON mappings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlaif.pipeline.context import Policy

Counts = dict[str, int | float]


class _Typed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageSummary(_Typed):
    """Common to every stage: output paths and counts."""

    outputs: _Typed
    counts: Counts = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def output_paths(self) -> list[str]:
        return [p for p in self.outputs.model_dump().values() if isinstance(p, str)]


class ModelOutputs(_Typed):
    model: str


class BuildSummary(StageSummary):
    outputs: ModelOutputs


class FeedbackOutputs(_Typed):
    pairs: str
    judgments: str | None = None
    dropped: str | None = None
    executions: str | None = None
    sft: str | None = None
    new_prompts: str | None = None


class _PairCounts(StageSummary):
    """Pairs made or kept: drops by reason and the chosen/rejected length summary."""

    drops: dict[str, int] = Field(default_factory=dict)
    length: dict[str, float | None] = Field(default_factory=dict)


class FeedbackSummary(_PairCounts):
    outputs: FeedbackOutputs
    inputs: dict[str, Any] | None = None
    invalid_reasons: dict[str, int] | None = None
    stats: dict[str, Any] | None = None


class PairsOutputs(_Typed):
    pairs: str


class PairsSummary(_PairCounts):
    outputs: PairsOutputs
    examples: list[dict[str, Any]] = Field(default_factory=list)


class TrainOutputs(_Typed):
    base_model: str | None = None
    adapter: str | None = None
    merged_model: str | None = None
    metrics_path: str | None = None


class TrainSummary(StageSummary):
    outputs: TrainOutputs = Field(default_factory=TrainOutputs)
    metrics: dict[str, int | float] = Field(default_factory=dict)
    skipped: str | None = None
    reward_model: dict[str, Any] | None = None


class EvalOutputs(_Typed):
    samples: str


class EvalSummary(StageSummary):
    outputs: EvalOutputs
    metrics: dict[str, Any] = Field(default_factory=dict)


def summary_from_json(model: type[StageSummary], data: Any) -> StageSummary | None:
    """A manifest's summary as its stage kind's model; None when it does not fit (the stage is then
    re-run)."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def train_summary(result: Any) -> TrainSummary:
    """The summary of a training stage from its :class:`rlaif.train.common.StageResult`."""
    data = result.to_json()
    outputs = {k: data.get(k) for k in ("base_model", "adapter", "merged_model", "metrics_path")}
    metrics = {k: v for k, v in data.get("metrics", {}).items() if isinstance(v, (int, float))}
    return TrainSummary(outputs=TrainOutputs(**outputs), counts=dict(data.get("counts", {})), metrics=metrics)


def next_policy(summary: TrainSummary, current: Policy) -> Policy:
    """The policy after a training stage: its merged model, or base + adapter, or unchanged (skipped)."""
    out = summary.outputs
    if out.merged_model:
        return Policy(Path(out.merged_model))
    if out.base_model:
        return Policy(Path(out.base_model), Path(out.adapter) if out.adapter else None)
    return current
