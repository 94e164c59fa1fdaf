"""A plug-in feedback source whose config model counts how often it is validated (tests/pipeline)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from rlaif.feedback.result import FeedbackResult
from rlaif.pairs import PairStats

VALIDATIONS = {"count": 0}
CALLS: list[tuple] = []


class CountingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suffix: str = "!"

    @model_validator(mode="after")
    def _count(self) -> CountingConfig:
        VALIDATIONS["count"] += 1
        return self


def counting_source(prompts, engine, options, context, *, judge_engine=None) -> FeedbackResult:
    """Records what it was given; every prompt is a counted drop."""
    CALLS.append((options, context))
    result = FeedbackResult(pairs=[], stats=PairStats(source="counting", prompts_in=len(prompts)))
    for p in prompts:
        result.drop(p.id, "not_paired")
    return result


counting_source.config_model = CountingConfig
