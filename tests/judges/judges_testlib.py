"""Helpers for judge tests: completions with hand-made token log-probabilities."""

from __future__ import annotations

import math

from rlaif.engines.scripted import ScriptedEngine
from rlaif.records import Completion, TokenLogprob, TopLogprob


def step(sampled: str, dist: dict[str, float]) -> TokenLogprob:
    """One generated token: ``dist`` maps alternative token text -> probability (the top-k)."""
    top = [TopLogprob(token=t, token_id=i, logprob=math.log(p)) for i, (t, p) in enumerate(dist.items())]
    sampled_lp = math.log(dist[sampled]) if sampled in dist else math.log(1e-6)
    sampled_id = list(dist).index(sampled) if sampled in dist else 999
    return TokenLogprob(token=sampled, token_id=sampled_id, logprob=sampled_lp, top=top)


def plain_step(token: str) -> TokenLogprob:
    return TokenLogprob(token=token, token_id=None, logprob=0.0, top=[TopLogprob(token=token, logprob=0.0)])


def choice_completion(
    dist: dict[str, float], prefix: list[str] = (), sampled: str | None = None
) -> Completion:
    """A completion whose answer token (after ``prefix`` tokens) has the alternatives ``dist``."""
    sampled = sampled or max(dist, key=dist.get)
    steps = [plain_step(t) for t in prefix] + [step(sampled, dist)]
    return Completion(text="".join(s.token for s in steps), logprobs=steps, finish_reason="stop")


def shown_first(conversation) -> str:
    """Which response text a pairwise prompt shows as A (between <response_a> tags or after '(A) ')."""
    text = conversation[-1].content
    if "<response_a>" in text:
        return text.split("<response_a>\n", 1)[1].split("\n</response_a>", 1)[0]
    return text.split("(A) ", 1)[1].split("\n", 1)[0]


from pydantic import BaseModel  # noqa: E402


class ScoreVerdict(BaseModel):
    """Schema for the JSON-parser template tests (importable as ``judges_testlib:ScoreVerdict``)."""

    why: str
    score: int


class WordCountingEngine(ScriptedEngine):
    """A scripted engine that counts prompt tokens as words (of a string prompt, or of a conversation's
    last turn) and has a ``max_model_len``-token context, so long requests can be refused."""

    def __init__(self, *args, max_model_len: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_model_len = max_model_len

    def count_prompt_tokens(self, prompts):
        return [len((p if isinstance(p, str) else p[-1].content).split()) for p in prompts]
