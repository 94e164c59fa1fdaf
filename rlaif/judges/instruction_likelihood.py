"""A score judge for verifiable-instruction prompts: how much does the instruction explain the reply?

    score(y) = mean over y's tokens of [log p(token | request + instruction) - log p(token | request)]

the same contrast that ``instruction_contrast`` uses to pick among its candidates, here as a judge any
score-slot user can take (``judge: {kind: python, template:
rlaif.judges.instruction_likelihood:instruction_likelihood}``): Self-Rewarding ranks its candidates
with it, a final RL round rewards rollouts with it. Why this judge on a small model: it never has to
write a verdict; the model only reads the reply twice, and fluency and topic cancel in the difference.
With ``judge.model: policy`` the judge is the current policy, so it changes round by round.

The bare request is found in the last user turn by :func:`rlaif.instructions.split_instruction` (the
prompt ends with an instruction in a shipped or held-out wording), so the judge needs only the
conversation. Guarantees: one ``score_continuations`` call per batch (the contrast is
:func:`rlaif.generation.contrast.contrast_of`); a prompt without a known
instruction wording, an empty reply, or a reply that does not fit the context is an invalid judgment
with its reason, never a made-up score. Needs an engine that scores text (in-process vLLM, no LoRA).
Non-guarantee: the scale is a log-likelihood ratio that depends on the model; compare within one judge.

Why :func:`instruction_and_request_likelihood` exists: the instruction contrast alone is highest for a
reply made of the instruction's own words ("<<my title>>", "Thank you."), which the request does not
explain at all. Self-Rewarding with it chose such a non-answer over a real answer in 69 of 270 round-1
pairs (the reverse in 15), and two rounds later most held-out replies were non-answers. The second
judge also asks how much the request explains the reply,

    request(y) = mean log p(token | request + instruction) - mean log p(token | instruction alone)

and scores ``min(instruction(y), request(y))``: a reply must be explained by both parts of the prompt.
Among replies on the request's topic (request contrast high) the instruction contrast decides; a
reply the request does not explain scores no higher than its request contrast. It costs a third
scoring context per reply.
"""

from __future__ import annotations

from typing import Any

from rlaif.engines.base import score_continuations
from rlaif.generation.contrast import contrast_of
from rlaif.instructions import split_instruction
from rlaif.records import Message


def _cut(messages: list[Message], part: int) -> list[Message] | None:
    """The conversation with its last user turn cut to the request (``part`` 0) or to the instruction
    sentence (``part`` 1); None: no known instruction wording."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        return None
    split = split_instruction(messages[users[-1]].content)
    if split is None:
        return None
    out = [m.model_copy() for m in messages]
    out[users[-1]] = Message(role="user", content=split[part])
    return out


def _scores(
    prompts: list[list[Message]], responses: list[str], engine: Any, name: str, parts: tuple[int, ...]
) -> list[float | dict]:
    """The minimum over ``parts`` of the reply's contrast against the prompt cut to that part."""
    if engine is None:
        raise ValueError(f"{name} needs the judge engine (it scores text)")
    out: list[float | dict | None] = [None] * len(prompts)
    items, owners = [], []
    for i, (messages, reply) in enumerate(zip(prompts, responses, strict=True)):
        msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
        cuts = [_cut(msgs, part) for part in parts]
        if cuts[0] is None:
            out[i] = {"value": None, "invalid_reason": "no known instruction wording in the last user turn"}
        elif not reply.strip():
            out[i] = {"value": None, "invalid_reason": "empty reply"}
        else:
            items.append((msgs, cuts, reply))
            owners.append(i)
    # one scoring call: the full prompt once, then each cut (the contrast is per cut, full minus cut)
    contexts = [c for msgs, cuts, reply in items for c in (msgs, *cuts)]
    replies = [reply for msgs, cuts, reply in items for _ in range(1 + len(cuts))]
    scores = score_continuations(engine, contexts, replies)
    width = 1 + len(parts)
    for n, i in enumerate(owners):
        full, *against = scores[n * width : (n + 1) * width]
        mine = [contrast_of(full, cut) for cut in against]
        if any(c.value is None for c in mine):
            out[i] = {"value": None, "invalid_reason": "reply does not fit the context"}
        else:
            out[i] = round(min(c.value for c in mine), 4)  # type: ignore[type-var]
    return out  # type: ignore[return-value]


def instruction_likelihood(
    prompts: list[list[Message]], responses: list[str], *, engine: Any = None
) -> list[float | dict]:
    """The instruction contrast of each reply (see the module docstring)."""
    return _scores(prompts, responses, engine, "instruction_likelihood", (0,))


def instruction_and_request_likelihood(
    prompts: list[list[Message]], responses: list[str], *, engine: Any = None
) -> list[float | dict]:
    """min(instruction contrast, request contrast) of each reply (see the module docstring)."""
    return _scores(prompts, responses, engine, "instruction_and_request_likelihood", (0, 1))
