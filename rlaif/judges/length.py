"""A length baseline judge: scores a reply by its length, no model asked.

Why: a judge is only worth its cost if it beats "prefer the shorter (or longer) reply"; with this as
a judge kind (``judge: {kind: length, prefer: shorter}``) the baseline runs through the same code as
every other score judge (``rlaif judge-eval``, self-rewarding, a reward function).

Guarantees: the score is ``-len(reply)`` (prefer shorter) or ``len(reply)`` (prefer longer) in
characters, so it is deterministic and tokenizer-free; every reply gets one valid judgment.
Non-guarantee: it says nothing about quality; it is a baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.judges.base import ScoreJudge, conversation_text, item_ids, judge_items
from rlaif.judges.pointwise import PointwiseResult
from rlaif.records import Judgment, Message, stable_hash


class LengthJudge(ScoreJudge):
    """Scores ``(conversation, reply)`` items by the reply's length in characters."""

    kind = "custom"

    def __init__(self, engine: Any = None, prefer: str = "shorter"):
        if prefer not in ("shorter", "longer"):
            raise ValueError("prefer must be 'shorter' or 'longer'")
        self.prefer = prefer
        self.template_hash = stable_hash("length", prefer)
        self.model_name = f"length:{prefer}"

    def score(
        self, items: Sequence[tuple[Sequence[Message], str]], ids: Sequence[str] | None = None
    ) -> list[PointwiseResult]:
        items = judge_items(items)
        contents = [conversation_text(conv) + "\x00" + reply for conv, reply in items]
        keys = item_ids(ids, len(items), "length", contents)
        sign = -1.0 if self.prefer == "shorter" else 1.0
        out = []
        for key, content, (_, reply) in zip(keys, contents, items, strict=True):
            judgment = Judgment(
                id=stable_hash("length", self.template_hash, key), kind="custom", judge_model=self.model_name,
                template=f"length:{self.prefer}", template_hash=self.template_hash,
                prompt_hash=stable_hash(content), raw_output=str(len(reply)), status="ok",
                score=sign * len(reply), subject_ids=[key],
            )  # fmt: skip
            out.append(PointwiseResult.of([judgment]))
        return out
