"""A ScriptedEngine that also takes one Sampling per prompt, as VLLMEngine and OpenAIEngine do.

Why: the feedback sources give every request its own seed (derived from the global seed and the
prompt's position) and so pass a list of Sampling settings in one ``generate`` call.
``rlaif.engines.scripted.ScriptedEngine`` takes a single Sampling; this subclass gives each prompt's
responder call that prompt's own settings and records the per-prompt settings of every call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rlaif.engines.base import PromptInput, Sampling
from rlaif.engines.scripted import ScriptedEngine
from rlaif.records import Completion, Message, PromptRecord, TokenLogprob, TopLogprob


class PerRequestScriptedEngine(ScriptedEngine):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests: list[list[tuple[PromptInput, Sampling]]] = []

    def generate(
        self,
        prompts: Sequence[PromptInput],
        sampling: Sampling | Sequence[Sampling],
        adapter: str | None = None,
    ) -> list[list[Completion]]:
        settings = [sampling] * len(prompts) if isinstance(sampling, Sampling) else list(sampling)
        assert len(settings) == len(prompts), "one Sampling per prompt"
        self.requests.append(list(zip(prompts, settings, strict=True)))
        out = []
        for prompt, s in zip(prompts, settings, strict=True):
            out.extend(super().generate([prompt], s, adapter))
            self.calls.pop()  # recorded once below, as one call
        self.calls.append((len(prompts), settings[0] if settings else sampling, adapter))
        return out


def call_source(
    source, prompts, engine, options=None, *, seed=0, round=0, adapter=None, judge_engine=None, judge=None
):
    """Call a built-in source the way the pipeline does: the options validated into the source's
    config model first, the run-time values (seed, round, adapter, the run's judge spec) in a
    ``SourceContext``."""
    from rlaif.feedback.context import SourceContext
    from rlaif.feedback.source import validate_source_options
    from rlaif.judges.spec import judge_spec

    name = source.__name__
    validated = validate_source_options(options, source.config_model, name)
    run_judge = None if judge is None else judge_spec(judge).model_dump(mode="json")
    context = SourceContext(seed=seed, round=round, adapter=adapter, chunk=0, judge=run_judge)
    return source(prompts, engine, validated, context, judge_engine=judge_engine)


def numbered_prompts(n: int = 2) -> list[PromptRecord]:
    """``n`` one-turn prompts ``p0: q0``, ``p1: q1``, ..."""
    return [PromptRecord(id=f"p{i}", messages=[Message(role="user", content=f"q{i}")]) for i in range(n)]


def choice_completion(p_first: float | None) -> Completion:
    """A judge answer whose first token puts P(first shown)=p_first on "A" and the rest on "B"
    (None: an answer with no label, which cannot be read)."""
    if p_first is None:
        return Completion(text="hmm", logprobs=[TokenLogprob(token="hmm", logprob=-0.1, top=[])])
    top = [
        TopLogprob(token="A", logprob=math.log(p_first)),
        TopLogprob(token="B", logprob=math.log(1 - p_first)),
    ]
    token = "A" if p_first >= 0.5 else "B"
    lp = math.log(p_first if token == "A" else 1 - p_first)
    return Completion(
        text=token, logprobs=[TokenLogprob(token=token, logprob=lp, top=top)], finish_reason="stop"
    )
