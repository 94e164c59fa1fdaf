"""A deterministic engine for logic tests: answers come from a user function, not a model.

It honours the Engine contract (n completions per prompt, input order) and records every call, so
tests can check batching ("one generate call per stage") and hand-compute expected labels.
With a ``scorer`` it also has the scoring capability (:class:`rlaif.engines.base.ScoringEngine`):
``scorer(conversation, continuation)`` gives the continuation's per-token log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rlaif.engines.base import PromptInput, Sampling, cannot_score_error, per_prompt
from rlaif.records import Completion, Message, as_conversation

Responder = Callable[[list[Message], int, Sampling], "str | Completion"]
Scorer = Callable[[list[Message], str], "list[float] | None"]


def prompt_text(prompt: PromptInput) -> str:
    """The prompt as one string (the last user turn for conversations), for matching in responders."""
    if isinstance(prompt, str):
        return prompt
    return as_conversation(prompt)[-1].content


class ScriptedEngine:
    """``responder(conversation, sample_index, sampling)`` returns the text (or a full Completion)."""

    def __init__(
        self,
        responder: Responder,
        model_name: str = "scripted",
        guided_json: bool = False,
        scorer: Scorer | None = None,
    ):
        self.responder = responder
        self.scorer = scorer
        self.model_name = model_name
        self._guided_json = guided_json
        self.calls: list[tuple[int, Sampling | Sequence[Sampling] | str, str | None]] = []

    @property
    def supports_guided_json(self) -> bool:
        return self._guided_json

    def generate(
        self,
        prompts: Sequence[PromptInput],
        sampling: Sampling | Sequence[Sampling],
        adapter: str | None = None,
    ) -> list[list[Completion]]:
        settings = per_prompt(sampling, len(prompts))
        self.calls.append((len(prompts), sampling, adapter))
        out = []
        for prompt, sampling in zip(prompts, settings, strict=True):
            conv = as_conversation(prompt)
            samples = []
            for i in range(sampling.n):
                res = self.responder(conv, i, sampling)
                comp = res if isinstance(res, Completion) else Completion(text=res, finish_reason="stop")
                samples.append(comp.model_copy(update={"index": i}))
            out.append(samples)
        return out

    def score_continuations(
        self, prompts: Sequence[PromptInput], continuations: Sequence[str], adapter: str | None = None
    ) -> list[list[float] | None]:
        """The scorer's log-probabilities per continuation; without a scorer, the "cannot score" error."""
        if self.scorer is None:
            raise cannot_score_error(self)
        self.calls.append((len(prompts), "score", adapter))
        return [self.scorer(as_conversation(p), c) for p, c in zip(prompts, continuations, strict=True)]

    def close(self) -> None:
        pass
