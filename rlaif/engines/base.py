"""The one interface every generator and judge talks to.

An engine turns a batch of prompts (plain strings or chat conversations) into ``n`` completions per
prompt, in input order. Callers hand the whole batch to one ``generate`` call so the backend (vLLM)
can schedule it as one batch; engines never reorder, drop or duplicate prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlaif.errors import EngineError
from rlaif.records import Completion, Message

PromptInput = str | list[Message] | list[dict]


class Sampling(BaseModel):
    """Sampling settings shared by all engines (validated before any request is sent)."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(1, ge=1, description="Samples per prompt.")
    temperature: float = Field(1.0, ge=0.0, description="0 means greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(128, ge=1, description="Maximum new tokens per sample.")
    stop: list[str] = Field(
        default_factory=list, description="Stop strings (not included in the text unless include_stop)."
    )
    include_stop: bool = Field(
        False, description="Keep the stop string that ended a sample at the end of its text."
    )
    seed: int | None = Field(None, description="Per-request seed; same seed, same prompt, same text.")
    logprobs: int | None = Field(
        None, ge=0, le=20, description="Return the sampled token's logprob plus this many top-k alternatives."
    )
    json_schema: dict[str, Any] | None = Field(
        None, description="Constrain output to this JSON schema where the engine supports guided decoding."
    )
    choice: list[str] | None = Field(
        None, min_length=1, description="Constrain output to exactly one of these strings (guided decoding)."
    )
    regex: str | None = Field(None, description="Constrain output to match this regex (guided decoding).")

    @model_validator(mode="after")
    def _one_constraint(self) -> Sampling:
        given = [k for k in ("json_schema", "choice", "regex") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set at most one output constraint, got {', '.join(given)}")
        return self


class SamplingSettings(BaseModel):
    """The user-facing sampling block of a config (``sampling: {temperature, top_p, max_tokens}``).

    Why a second model next to :class:`Sampling`: configs choose only these three; the run decides
    ``n``, seeds, stop strings and output constraints, so letting a config set them would give two
    owners to one value. Every stage and source uses this one block, so a setting has one name.
    """

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature (0 means greedy).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(
        128,
        ge=1,
        description="Maximum new tokens per sample (vLLM's word, kept for sampling; the trainers' "
        "rollouts use TRL's max_completion_length).",
    )

    def to_sampling(self, **run_values: Any) -> Sampling:
        """The engine-level Sampling: these settings plus what the run decides (n, seed, stop...)."""
        return Sampling(
            temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, **run_values
        )


@runtime_checkable
class Engine(Protocol):
    """Anything that can sample completions.

    ``adapter`` names a LoRA adapter directory to apply for this call (None: the base model).
    ``sampling`` is one setting for the whole batch or one per prompt (per-prompt seeds keep a
    prompt's samples independent of its batch neighbours). Returns one list of ``n`` completions per
    prompt, in input order.
    """

    model_name: str

    def generate(
        self,
        prompts: Sequence[PromptInput],
        sampling: Sampling | Sequence[Sampling],
        adapter: str | None = None,
    ) -> list[list[Completion]]: ...

    @property
    def supports_guided_json(self) -> bool: ...

    def close(self) -> None: ...


def per_prompt(sampling: Sampling | Sequence[Sampling], count: int) -> list[Sampling]:
    """The batch's sampling as one setting per prompt, the form :class:`Engine` allows either way;
    an EngineError when a list does not match the prompts one to one (zipping would drop prompts)."""
    settings = [sampling] * count if isinstance(sampling, Sampling) else list(sampling)
    if len(settings) != count:
        raise EngineError(f"got {len(settings)} sampling settings for {count} prompts")
    return settings


# -- scoring a given text (optional capability) ----------------------------------------------------
@runtime_checkable
class ScoringEngine(Protocol):
    """An engine that can score a given continuation instead of sampling one.

    ``score_continuations(prompts, continuations)`` returns, per prompt, the log-probability of each
    token of ``continuations[i]`` given the prompt (chat conversations rendered with the model's chat
    template and generation prompt, as for ``generate``) and the continuation tokens before it; or
    ``None`` where prompt plus continuation do not fit the model's context (nothing is truncated).
    Why: likelihood judges (RLCD-style contrast of two contexts) need ``log p(response | context)``,
    which sampling does not give.
    """

    def score_continuations(
        self,
        prompts: Sequence[PromptInput],
        continuations: Sequence[str],
        adapter: str | None = None,
    ) -> list[list[float] | None]: ...


def cannot_score_error(engine: Any) -> EngineError:
    """The one message for an engine without the scoring capability."""
    name = getattr(engine, "model_name", None) or type(engine).__name__
    return EngineError(
        f"engine '{name}' ({type(engine).__name__}) cannot score a given text (it returns no prompt "
        "log-probabilities); likelihood judges need the in-process VLLMEngine (rlaif judge-eval --model DIR)"
    )


def require_scoring(engine: Any) -> None:
    """Raise the engine's own "cannot score" error now, before a stage spends time generating.

    An empty request is enough: an engine without the capability has no method, and vLLM refuses a
    LoRA-enabled engine before looking at the requests."""
    method = getattr(engine, "score_continuations", None)
    if method is None:
        raise cannot_score_error(engine)
    method([], [])


def score_continuations(
    engine: Any,
    prompts: Sequence[PromptInput],
    continuations: Sequence[str],
    adapter: str | None = None,
) -> list[list[float] | None]:
    """``engine.score_continuations`` with the capability and the result length checked."""
    if len(prompts) != len(continuations):
        raise ValueError(f"got {len(continuations)} continuations for {len(prompts)} prompts")
    method = getattr(engine, "score_continuations", None)
    if method is None:
        raise cannot_score_error(engine)
    if not prompts:
        return []
    out = method(prompts, continuations, adapter=adapter)
    if len(out) != len(prompts):
        raise EngineError(f"engine returned {len(out)} scores for {len(prompts)} prompts")
    return list(out)
