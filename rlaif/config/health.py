"""The ``health:`` block: the numbers that stop a run, or warn, when it is not working.

Guarantees: rates are checked to lie in [0, 1]; an unknown check named in ``warnings_as_errors`` is
refused. The checks themselves run in :mod:`rlaif.pipeline.health` and
:mod:`rlaif.pipeline.result_warnings`.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from rlaif.config.base import Strict


class HealthConfig(Strict):
    """Checks that stop a run whose numbers say it is not working, instead of ending with exit 0."""

    max_judge_invalid_rate: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Stop when more than this fraction of a stage's judgments are invalid (null: never).",
    )
    min_pairs: int = Field(
        1, ge=0, description="Stop when a round has fewer preference pairs than this (after filtering)."
    )
    min_judge_consistency: float | None = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Warn when the position consistency of the win-rate judge or of a round's feedback "
        "judge is below this (a judge that ignores the answers scores 0.5 or less; null: never).",
    )
    drop_p_value: float | None = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="Warn when a round's paired held-out outcomes (code samples, pass@k problems, "
        "instructions) fall vs the previous round with a sign-test p below this (null: never).",
    )
    max_invalid_rate_rise: float | None = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Warn when a stage's judge invalid rate exceeds the lowest of the earlier rounds' "
        "by more than this (null: never).",
    )
    warnings_as_errors: bool | list[str] = Field(
        False,
        description="Stop the run on the report's warnings: true for all, or a list of checks "
        "(judge_consistency, drop, invalid_rise).",
    )

    @field_validator("warnings_as_errors")
    @classmethod
    def _known_checks(cls, value: bool | list[str]) -> bool | list[str]:
        known = ("judge_consistency", "drop", "invalid_rise")
        unknown = [v for v in value if v not in known] if isinstance(value, list) else []
        if unknown:
            raise ValueError(f"unknown check {unknown[0]!r} (known: {', '.join(known)})")
        return value
