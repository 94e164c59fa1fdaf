"""Feedback sources: functions that turn prompts into AI preference pairs with provenance and stats.

Built-in sources (:data:`rlaif.feedback.registry.BUILTINS`):

- ``rlcd``: contrastive prompts, positive output chosen by construction (:mod:`.rlcd`);
- ``sl_cai``: critique -> revision chains, final revision > initial response (:mod:`.sl_cai`);
- ``rl_cai``: two samples labelled by the principle-conditioned judge (:mod:`.rl_cai`);
- ``self_rewarding``: the policy judges its own N samples, best vs worst (:mod:`.self_rewarding`);
- ``rlcf``: code candidates run against their unit tests in the sandbox, passing beats failing
  (:mod:`.rlcf`);
- ``instruction_contrast``: the prompt with vs without its instructions (:mod:`.instruction_contrast`).

User sources plug in as ``"package.module:function"`` with the same signature and the same
declaration (:func:`rlaif.feedback.registry.feedback_source`; see
:class:`rlaif.feedback.source.FeedbackSource`)::

    @feedback_source(config=MyConfig, judge="score")
    def my_source(prompts: list[PromptRecord], engine: Engine, options: MyConfig,
                  context: SourceContext, *, judge_engine: Engine | None = None) -> FeedbackResult

``options`` is already validated against the declared config model (without one: the mapping as
written). ``context`` (:class:`rlaif.feedback.context.SourceContext`) carries what the run decides: the
chunk's seed, the round, the adapter the policy engine serves, the chunk, and the run's judge for a
source with a judge slot. A source that declares ``needs=("sandbox",)`` is given the run's pool as
``sandbox=``. The pipeline reads all of this from :func:`rlaif.feedback.registry.describe`.
"""

from __future__ import annotations

from typing import Any

from rlaif.errors import ConfigError
from rlaif.feedback.context import DEFAULT_CONTEXT, SourceContext
from rlaif.feedback.prompts_io import load_prompts, read_prompt_file
from rlaif.feedback.registry import BUILTINS, SourceSpec, describe, feedback_source
from rlaif.feedback.result import FeedbackResult, SFTRecord
from rlaif.feedback.rl_cai import RLCAIConfig, rl_cai
from rlaif.feedback.rlcd import RLCDConfig, rlcd
from rlaif.feedback.rlcf import RLCFConfig, rlcf
from rlaif.feedback.self_rewarding import SelfRewardingConfig, self_rewarding
from rlaif.feedback.sl_cai import SLCAIConfig, sl_cai
from rlaif.feedback.source import FeedbackSource, validate_source_options


def source_options(spec: str, options: Any) -> Any:
    """The source's options as its config model, validated here once (an instance passes as is; a
    plug-in without a config model gets the mapping)."""
    model = describe(spec).config_model
    if model is None:
        return options if options is not None else {}
    return validate_source_options(options, model, spec)


def run_source(
    spec: str,
    prompts: list,
    engine: Any,
    options: Any = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Any = None,
    sandbox: Any = None,
) -> FeedbackResult:
    """Resolve and call a source as ``source(prompts, engine, options, context, judge_engine=...)``,
    checking it returned a :class:`FeedbackResult` whose counts add up. ``options`` may be a mapping
    (validated once here) or the config model; ``sandbox`` goes to sources that declare the need."""
    declared = describe(spec)
    extra = {"sandbox": sandbox} if declared.needs_sandbox else {}
    out = declared.run(
        prompts, engine, source_options(spec, options), context or DEFAULT_CONTEXT,
        judge_engine=judge_engine, **extra,
    )  # fmt: skip
    if not isinstance(out, FeedbackResult):
        raise ConfigError(f"feedback source '{spec}' returned {type(out).__name__}, expected FeedbackResult")
    if not out.stats.balanced:
        raise ConfigError(
            f"feedback source '{spec}': counts do not add up (prompts_in={out.stats.prompts_in}, "
            f"pairs_out={out.stats.pairs_out}, dropped={out.stats.dropped})"
        )
    return out


__all__ = [
    "BUILTINS",
    "FeedbackResult",
    "FeedbackSource",
    "RLCAIConfig",
    "RLCDConfig",
    "RLCFConfig",
    "SFTRecord",
    "SLCAIConfig",
    "SelfRewardingConfig",
    "SourceContext",
    "SourceSpec",
    "describe",
    "feedback_source",
    "load_prompts",
    "read_prompt_file",
    "rl_cai",
    "rlcd",
    "rlcf",
    "run_source",
    "self_rewarding",
    "sl_cai",
    "source_options",
]
