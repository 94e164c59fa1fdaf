"""JSON verdict schemas for the test judge templates in ``assets/``.

Why: the tiny test model has random weights, so it never writes "Score: 3" or puts "A"/"B" among its
top tokens on its own. With these schemas vLLM's guided decoding forces a parseable verdict, so the
feedback sources' real-engine tests exercise the whole path (render -> generate -> parse -> label)
and produce pairs whose accounting can be checked. The verdicts themselves are noise.
"""

from typing import Literal

from pydantic import BaseModel


class ScoreVerdict(BaseModel):
    score: Literal[0, 1, 2, 3, 4, 5]


class ChoiceVerdict(BaseModel):
    choice: Literal["A", "B"]
