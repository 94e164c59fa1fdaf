"""What every feedback source takes: the call signature and the options every built-in source shares.

A feedback source is a plain function::

    def my_source(
        prompts: list[PromptRecord],
        engine: Engine,
        options: MyConfig | dict,
        context: SourceContext,
        *,
        judge_engine: Engine | None = None,
    ) -> FeedbackResult: ...

``engine`` serves the policy (the model whose outputs become pairs); ``judge_engine`` serves the AI
labeller where the source has one (None: the policy engine judges, as in Self-Rewarding). ``options``
is the already validated instance of the config model the source declares
(:func:`rlaif.feedback.registry.feedback_source`; a plug-in without one gets the plain dict); a source
never validates its options again, and never filters pairs (the pairs stage does). ``context``
carries what the run decides: seed, round, the adapter the engine serves, the chunk, the run's judge
(:class:`rlaif.feedback.context.SourceContext`).

Guarantees every built-in source keeps by sending its requests through :mod:`rlaif.generation` (and
user sources should keep, most simply the same way):
- accounting: every input prompt either yields exactly one pair or is counted under one drop reason
  (see :mod:`rlaif.feedback.result`);
- batching: each stage sends all its requests in one ``engine.generate`` call (retries: one call per
  retry round, holding only the requests still invalid);
- determinism: each request is sampled with its own seed derived from ``context.seed``, the stage and
  the request's key; per-prompt draws (affix, principle) derive from ``context.seed`` and the
  prompt's position, so a prompt's samples do not depend on its batch neighbours;
- prompts longer than the model's context (where the engine can count tokens) are dropped as
  ``prompt_too_long`` instead of failing the whole batch;
- provenance: each pair's ``metadata`` records the model, ``context.adapter``, seeds, templates
  (name + content hash) and what was drawn at random for it; ``judgment_ids`` point into
  ``FeedbackResult.judgments``.
Non-guarantee: determinism holds for one engine build on one machine (kernels differ across devices).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlaif.engines.base import Engine, SamplingSettings
from rlaif.errors import ConfigError, RecordError, describe_validation_error
from rlaif.feedback.context import SourceContext
from rlaif.feedback.result import FeedbackResult
from rlaif.generation.output_rules import OutputRules
from rlaif.records import PromptRecord


class FeedbackSource(Protocol):
    """The signature of a feedback source (built-in or a user's ``package.module:function``)."""

    def __call__(
        self,
        prompts: list[PromptRecord],
        engine: Engine,
        options: Any,
        context: SourceContext,
        *,
        judge_engine: Engine | None = None,
    ) -> FeedbackResult: ...


class PartialSamplingBlocks(BaseModel):
    """A config whose ``sampling`` blocks may be given in part: the keys given override the source's
    own defaults for that block (``sampling: {max_tokens: 512}`` keeps self_rewarding's temperature
    0.7), instead of falling back to the generic :class:`SamplingSettings` defaults."""

    model_config = ConfigDict(extra="forbid")

    renamed_keys: ClassVar[dict[str, str]] = {
        "n_candidates": "num_generations",
        "candidates": "num_generations",
    }
    """Old option names -> TRL's (an old key is refused with "did you mean" the new one)."""

    @model_validator(mode="before")
    @classmethod
    def _merge_sampling_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, spec in cls.model_fields.items():
            given = out.get(name)
            if spec.annotation is SamplingSettings and isinstance(given, dict) and spec.default_factory:
                out[name] = {**spec.default_factory().model_dump(), **given}
        return out


class SourceConfig(PartialSamplingBlocks):
    """The options every built-in source shares: output rules. (Pairs are filtered by the pairs stage
    only, ``pairs.options``; a source builds and counts, it never filters.)"""

    output: OutputRules = Field(
        default_factory=OutputRules, description="Cut markers and length limits for every output."
    )


C = TypeVar("C", bound=BaseModel)


def validate_source_options(options: C | dict | None, model: type[C], where: str) -> C:
    """The caller's side: a dict (or None: defaults) validated into the source's model, naming bad
    fields; an instance passes through."""
    if isinstance(options, model):
        return options
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError(
            f"{where}: options must be a mapping or {model.__name__}, got {type(options).__name__}"
        )
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problem = describe_validation_error(exc, root="(config)", config_keys=True, model=model)
        raise ConfigError(f"{where} config: {problem}") from None


def require_prompts(prompts: list[PromptRecord], source: str) -> None:
    """A source run on no prompts is a caller's error, never an empty result."""
    if not prompts:
        raise RecordError(f"{source}: no prompts given")
