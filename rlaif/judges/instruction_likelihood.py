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
:func:`rlaif.generation.contrast.log_prob_contrasts`); a prompt without a known
instruction wording, an empty reply, or a reply that does not fit the context is an invalid judgment
with its reason, never a made-up score. Needs an engine that scores text (in-process vLLM, no LoRA).
Non-guarantee: the scale is a log-likelihood ratio that depends on the model; compare within one judge.
"""

from __future__ import annotations

from typing import Any

from rlaif.generation.contrast import log_prob_contrasts
from rlaif.instructions import split_instruction
from rlaif.records import Message


def _bare(messages: list[Message]) -> list[Message] | None:
    """The conversation with its last user turn cut to the request (None: no known instruction)."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        return None
    split = split_instruction(messages[users[-1]].content)
    if split is None:
        return None
    out = [m.model_copy() for m in messages]
    out[users[-1]] = Message(role="user", content=split[0])
    return out


def instruction_likelihood(
    prompts: list[list[Message]], responses: list[str], *, engine: Any = None
) -> list[float | dict]:
    """The instruction contrast of each reply (see the module docstring)."""
    if engine is None:
        raise ValueError("instruction_likelihood needs the judge engine (it scores text)")
    out: list[float | dict | None] = [None] * len(prompts)
    items, owners = [], []
    for i, (messages, reply) in enumerate(zip(prompts, responses, strict=True)):
        msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
        bare = _bare(msgs)
        if bare is None:
            out[i] = {"value": None, "invalid_reason": "no known instruction wording in the last user turn"}
        elif not reply.strip():
            out[i] = {"value": None, "invalid_reason": "empty reply"}
        else:
            items.append((msgs, bare, reply))
            owners.append(i)
    for i, contrast in zip(owners, log_prob_contrasts(engine, items), strict=True):
        if contrast.value is None:
            out[i] = {"value": None, "invalid_reason": "reply does not fit the context"}
        else:
            out[i] = round(contrast.value, 4)
    return out  # type: ignore[return-value]
