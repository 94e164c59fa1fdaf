"""A user feedback source used by the registry tests (plugged in as ``fb_plugin:echo_source``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from rlaif.engines.base import Sampling
from rlaif.feedback.result import FeedbackResult, pair_id
from rlaif.pairs import PairStats
from rlaif.records import PreferencePair


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suffix: str = "!"


def echo_source(prompts, engine, options: EchoConfig, context, *, judge_engine=None) -> FeedbackResult:
    """Chosen: the engine's answer plus a suffix; rejected: the bare answer (options arrive validated)."""
    cfg = options
    result = FeedbackResult(pairs=[], stats=PairStats(source="echo", prompts_in=len(prompts)))
    outs = engine.generate([p.messages for p in prompts], Sampling(seed=0))
    for rec, out in zip(prompts, outs, strict=True):
        text = out[0].text
        chosen = text + cfg.suffix
        result.pairs.append(
            PreferencePair(
                id=pair_id("echo", 0, rec.id, chosen, text),
                prompt=rec.messages,
                chosen=chosen,
                rejected=text,
                source="echo",
                metadata={"prompt_id": rec.id},
            )  # fmt: skip
        )
    result.stats.pairs_out = len(result.pairs)
    return result


echo_source.config_model = EchoConfig


def unbalanced_source(prompts, engine, options, context, *, judge_engine=None) -> FeedbackResult:
    return FeedbackResult(pairs=[], stats=PairStats(source="broken", prompts_in=len(prompts)))


not_a_function = 42


RECEIVED: list = []


def recording_source(prompts, engine, options, context, *, judge_engine=None) -> FeedbackResult:
    """Records what it was called with (a plug-in without config_model: options stay a dict)."""
    RECEIVED.append((options, context))
    result = FeedbackResult(pairs=[], stats=PairStats(source="recording", prompts_in=len(prompts)))
    for rec in prompts:
        result.drop(rec.id, "not_paired")
    return result
