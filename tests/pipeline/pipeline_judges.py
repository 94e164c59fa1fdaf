"""Python judges for the pipeline tests, plugged in as ``pipeline_judges:<name>`` (judge.template and
eval.win_rate_judge). Deterministic, so the tests know which judgments are invalid and why."""

from __future__ import annotations

DECLINED = "length judge declined: every fourth response is not scored"


def length_score(prompts, responses):
    """Pointwise: a score from the response length; every fourth response is an invalid judgment."""
    out = []
    for i, text in enumerate(responses):
        if i % 4 == 3:
            out.append({"value": None, "invalid_reason": DECLINED})
        else:
            out.append(float(len(text.split()) % 7))
    return out


def prefer_shorter(prompts, responses_a, responses_b):
    """Pairwise: P(response_a is better) is higher the shorter response_a is."""
    return [
        1.0 if len(a) < len(b) else 0.0 if len(a) > len(b) else 0.5 for a, b in zip(responses_a, responses_b)
    ]


def always_a(prompts, responses_a, responses_b):
    """Pairwise: always prefers the first answer shown, whatever it says (position consistency 0%)."""
    return [1.0 for _ in responses_a]
