"""Expected scores on scales whose labels are not all one character (1-10, 0-100, -5..5).

Why: the expected score of a ``Score: N`` judgment is read from the probabilities of the label. On a
0-9 scale every label is one digit, so the top-k alternatives of the score token are the whole
distribution. Above 9 they are not: with a tokenizer that splits digits, "10" is "1" then "0", so the
alternative "1" at the score token is the mass of 1 *and* of 10 (a "Score: 9" read as 2.87 on a 1-10
scale). Here each label is scored as a whole continuation instead: ``log p(prefix + label)`` with
prompt log-probabilities, where the prefix is the judge's own output up to the number.

Guarantees: the distribution is over the integer labels of ``[min, max]`` only; a label that is the
start of a longer label in range (1 of 10..19) gets its own mass, ``p(prefix+"1") - sum p(prefix+"1d")``
over the in-range one-digit extensions, so no mass is counted twice; the prefix is common to all
labels of one judgment and cancels in the normalisation; one ``score_continuations`` call per batch.
Non-guarantees: the continuation of a label by digits that make an out-of-range number ("11" on a
1-10 scale) stays with that label, as the one-digit path's top-k does; a scale of more than
:data:`MAX_LABELS` labels is refused rather than scored (one request per label).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from rlaif.errors import TemplateError
from rlaif.generation import require_scoring, score_continuations
from rlaif.prompts import ScoreParserSpec

MAX_LABELS = 101


def needs_continuations(spec: ScoreParserSpec) -> bool:
    """Whether some label of the scale has more than one character (then top-k cannot score it)."""
    if spec.min is None or spec.max is None:
        return True
    return any(len(label) > 1 for label in scale_labels(spec, where="", check=False))


def scale_labels(spec: ScoreParserSpec, *, where: str, check: bool = True) -> list[str]:
    """The integer labels of ``[min, max]`` as text; refused when the scale is open or too wide."""
    if spec.min is None or spec.max is None:
        if check:
            raise TemplateError(f"{where}: expected_score needs a scale with both 'min' and 'max'")
        return []
    lo, hi = math.ceil(spec.min), math.floor(spec.max)
    if check and hi - lo + 1 > MAX_LABELS:
        raise TemplateError(
            f"{where}: expected_score on [{spec.min:g}, {spec.max:g}] would score {hi - lo + 1} labels per "
            f"judgment (at most {MAX_LABELS}); narrow the scale or turn expected_score off"
        )
    return [str(v) for v in range(lo, hi + 1)]


def score_prefix(text: str, spec: ScoreParserSpec) -> str | None:
    """The output up to the number that was read (the match ``multiple`` picks), or None."""
    matches = list(re.finditer(spec.pattern, text))
    if not matches:
        return None
    m = matches[-1] if spec.multiple == "last" else matches[0]
    return text[: m.start(1)]


def label_distributions(
    engine: Any, jobs: Sequence[tuple[Any, str]], labels: list[str], adapter: str | None = None
) -> list[dict[str, float] | None]:
    """For each ``(prompt payload, prefix)``: p(label) over ``labels``, normalised (None when the
    request does not fit the context or no label has mass). One scoring call for every job."""
    if not jobs:
        return []
    require_scoring(engine)
    prompts = [payload for payload, _ in jobs for _ in labels]
    texts = [prefix + label for _, prefix in jobs for label in labels]
    scored = score_continuations(engine, prompts, texts, adapter=adapter)
    out: list[dict[str, float] | None] = []
    for j in range(len(jobs)):
        rows = scored[j * len(labels) : (j + 1) * len(labels)]
        if any(r is None for r in rows):
            out.append(None)
            continue
        raw = {label: math.exp(sum(r)) for label, r in zip(labels, rows, strict=True)}
        out.append(_normalised(_exact(raw)))
    return out


def _exact(raw: dict[str, float]) -> dict[str, float]:
    """p(label and the number ends there): a label's mass less that of its in-range extensions."""
    exact = {}
    for label, p in raw.items():
        longer = sum(
            q for other, q in raw.items() if len(other) == len(label) + 1 and other.startswith(label)
        )
        exact[label] = max(p - longer, 0.0)
    return exact


def _normalised(mass: dict[str, float]) -> dict[str, float] | None:
    total = sum(mass.values())
    if total <= 0:
        return None
    return {label: m / total for label, m in mass.items()}
