"""Turn a judge model's output into a score, a choice, or a validated JSON object.

Every parser returns a :class:`Parsed`; an output that cannot be read is ``ok=False`` with a reason
and carries no score or choice. Nothing here ever guesses a label: a parse failure becomes a recorded
invalid judgment upstream.

Score (regex with a range)::

    >>> spec = ScoreParserSpec(min=0, max=5)
    >>> parse_score("Relevant and clear.\\nScore: 4", spec).score
    4.0
    >>> parse_score("Score: 3 ... on reflection, Score: 4", spec).reason
    'ambiguous: the pattern matched different scores (3, 4)'
    >>> parse_score("Score: 4. Final answer, Score: 4", spec).score
    4.0
    >>> parse_score("Score: 7", spec).reason
    'score 7 is outside [0, 5]'
    >>> parse_score("I would give it four points.", spec).ok
    False

Choice from the text (the label must open the answer, or follow the marker)::

    >>> spec = ChoiceParserSpec(labels=["A", "B"], source="text")
    >>> parse_choice_text("(B) because it is safer", spec).choice
    'B'
    >>> parse_choice_text("Response A.", spec).choice
    'A'
    >>> parse_choice_text("A good reply would mention both, so B", spec).ok
    False
    >>> parse_choice_text("I think Response B is better than A.", spec).ok
    False
    >>> cot = ChoiceParserSpec(labels=["A", "B"], source="text", marker="Answer:")
    >>> parse_choice_text("A is vague; B cites a source.\\nAnswer: B", cot).choice
    'B'
    >>> parse_choice_text("Both are fine. B seems better.", cot).reason
    "marker 'Answer:' not found in the output"

Choice from token probabilities: see :func:`choice_probabilities`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from rlaif.errors import TemplateError, describe_validation_error
from rlaif.plugins import import_object
from rlaif.prompts import ChoiceParserSpec, JsonParserSpec, ScoreParserSpec
from rlaif.records import Completion, TokenLogprob

__all__ = [
    "ChoiceParserSpec",
    "JsonParserSpec",
    "Parsed",
    "ScoreParserSpec",
    "choice_probabilities",
    "expected_score",
    "json_schema_of",
    "parse_choice_text",
    "parse_completion",
    "parse_json",
    "parse_score",
]

# Characters that may wrap a label ("(A)", "**B**", "'A'") without changing which label it is.
_OPENERS = "([*\"'`"
_CLOSERS = ")].:*\"'`,"


@dataclass
class Parsed:
    """What a parser read. ``probabilities`` are normalised over the labels (choice parsers only)."""

    ok: bool
    reason: str | None = None
    score: float | None = None
    choice: str | None = None
    probabilities: dict[str, float] | None = None
    parsed: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def invalid(cls, reason: str, **details: Any) -> Parsed:
        return cls(ok=False, reason=reason, details=details)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _in_range(value: float, lo: float | None, hi: float | None) -> str | None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else _fmt(lo)
        hi_s = "inf" if hi is None else _fmt(hi)
        return f"score {_fmt(value)} is outside [{lo_s}, {hi_s}]"
    return None


# -- score -----------------------------------------------------------------------------------------
def parse_score(text: str, spec: ScoreParserSpec) -> Parsed:
    """The number captured by ``spec.pattern``; several different numbers are ambiguous by default."""
    values = []
    for m in re.finditer(spec.pattern, text):
        try:
            values.append(float(m.group(1)))
        except (TypeError, ValueError):
            return Parsed.invalid(f"captured {m.group(1)!r}, which is not a number")
    if not values:
        return Parsed.invalid(f"no score found (pattern: {spec.pattern})")
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1 and spec.multiple == "reject":
        shown = ", ".join(_fmt(v) for v in distinct)
        return Parsed.invalid(f"ambiguous: the pattern matched different scores ({shown})")
    value = values[-1] if spec.multiple == "last" else values[0]
    problem = _in_range(value, spec.min, spec.max)
    if problem:
        return Parsed.invalid(problem)
    return Parsed(ok=True, score=value, details={"matches": len(values)})


# -- choice from text ------------------------------------------------------------------------------
def _answer_segment(text: str, marker: str | None) -> tuple[str | None, str | None]:
    if marker is None:
        return text, None
    pos = text.rfind(marker)
    if pos < 0:
        return None, f"marker {marker!r} not found in the output"
    return text[pos + len(marker) :], None


def parse_choice_text(text: str, spec: ChoiceParserSpec) -> Parsed:
    """The label that opens the answer.

    Accepted: the label alone, wrapped (``(A)``, ``**A**``), after "Response"/"Option"/"Answer",
    or followed by punctuation or a line break. A label followed by more words on the same line ("A
    good reply...") is not accepted, because it cannot be told apart from ordinary prose.
    """
    segment, problem = _answer_segment(text, spec.marker)
    if segment is None:
        return Parsed.invalid(problem or "no answer")
    labels = sorted(spec.labels, key=len, reverse=True)
    alternatives = "|".join(re.escape(x) for x in labels)
    pattern = (
        rf"^[\s{re.escape(_OPENERS)}]*(?:(?i:response|option|output|answer)\s*)?"
        rf"({alternatives})(?:\s*$|[{re.escape(_CLOSERS)}]|[ \t]*\r?\n)"
    )
    m = re.match(pattern, segment)
    if not m:
        where = f"after {spec.marker!r}" if spec.marker else "at the start of the output"
        return Parsed.invalid(f"no label ({', '.join(spec.labels)}) {where}")
    return Parsed(ok=True, choice=m.group(1), details={"source": "text"})


# -- choice from token probabilities ---------------------------------------------------------------
def _normalise_token(token: str) -> str:
    return token.strip().lstrip(_OPENERS).rstrip(_CLOSERS).strip()


def _is_filler(token: str) -> bool:
    return token.strip().strip(_OPENERS) == ""


def _answer_token_index(steps: list[TokenLogprob], marker: str | None) -> tuple[int | None, str | None]:
    """Index of the token that carries the answer: the first non-filler token (after the marker)."""
    start = 0
    if marker is not None:
        text = "".join(s.token for s in steps)
        pos = text.rfind(marker)
        if pos < 0:
            return None, f"marker {marker!r} not found in the output"
        end, offset = pos + len(marker), 0
        start = len(steps)
        for i, step in enumerate(steps):
            if offset >= end:
                start = i
                break
            offset += len(step.token)
    for i in range(start, len(steps)):
        if not _is_filler(steps[i].token):
            return i, None
    return None, "the output ended before an answer token"


def choice_probabilities(completion: Completion, spec: ChoiceParserSpec) -> Parsed:
    """Soft label from the answer token's top-k alternatives, normalised over the labels.

    The answer token is the first generated token that is not whitespace or an opening bracket (with
    a marker: the first such token after the marker's last occurrence). Alternatives whose text is a
    label once spaces and brackets are stripped ("A", " A", "(A") add up to that label's mass; the
    sampled token counts too. A label absent from the top-k gets mass 0. If no label is present the
    output is invalid: that order's probability is unknown, not 0.5.

    >>> from rlaif.records import TopLogprob as T
    >>> step = TokenLogprob(token="A", logprob=math.log(0.5), top=[
    ...     T(token="A", logprob=math.log(0.5)), T(token=" B", logprob=math.log(0.3)),
    ...     T(token="B", logprob=math.log(0.1)), T(token="x", logprob=math.log(0.1))])
    >>> p = choice_probabilities(Completion(text="A", logprobs=[step]), ChoiceParserSpec())
    >>> round(p.probabilities["A"], 6), p.choice
    (0.555556, 'A')
    """
    steps = completion.logprobs
    if not steps:
        return Parsed.invalid("no token log-probabilities in the output (request Sampling(logprobs=k))")
    index, problem = _answer_token_index(steps, spec.marker)
    if index is None:
        return Parsed.invalid(_with_finish(problem or "no answer token", completion))
    step = steps[index]
    seen: set[Any] = set()
    mass = dict.fromkeys(spec.labels, 0.0)
    logprob_of: dict[str, float] = {}
    for alt_token, alt_id, alt_lp in [(t.token, t.token_id, t.logprob) for t in step.top] + [
        (step.token, step.token_id, step.logprob)
    ]:
        key = alt_id if alt_id is not None else alt_token
        if key in seen:
            continue
        seen.add(key)
        label = _normalise_token(alt_token)
        if label in mass and alt_lp is not None and math.isfinite(alt_lp):
            mass[label] += math.exp(alt_lp)
            logprob_of[repr(alt_token)] = alt_lp
    total = sum(mass.values())
    details = {"source": "logprobs", "answer_token_index": index, "answer_token": step.token}
    if total <= 0.0:
        return Parsed.invalid(
            f"none of the labels ({', '.join(spec.labels)}) is among the top-{len(step.top)} "
            f"alternatives of answer token {index} (sampled {step.token!r})",
            **details,
        )
    probs = {label: m / total for label, m in mass.items()}
    best = max(probs.values())
    winners = [label for label, p in probs.items() if p == best]
    details["label_logprobs"] = logprob_of
    details["missing_labels"] = [label for label, m in mass.items() if m == 0.0]
    return Parsed(
        ok=True, choice=winners[0] if len(winners) == 1 else None, probabilities=probs, details=details
    )


def _with_finish(reason: str, completion: Completion) -> str:
    if completion.finish_reason == "length":
        return reason + " (generation hit max_tokens / the context limit)"
    return reason


# -- expected score from the score token's probabilities -------------------------------------------
def expected_score(completion: Completion, parsed: Parsed, spec: ScoreParserSpec) -> Parsed:
    """Replace a readable integer score by its expectation under the score token's top-k.

    The score token is the last generated token whose text is the number that was read. Its
    alternatives that are whole numbers within [min, max] are renormalised over those values; the
    score becomes sum(p * value). A graded score separates two replies the greedy text scores alike.
    Without log-probabilities, or when the number spans several tokens, the parsed score is kept
    and ``details['expected']`` says why.

    >>> from rlaif.records import TopLogprob as T
    >>> step = TokenLogprob(token="4", logprob=math.log(0.6), top=[
    ...     T(token="4", logprob=math.log(0.6)), T(token="3", logprob=math.log(0.2)),
    ...     T(token="x", logprob=math.log(0.2))])
    >>> c = Completion(text="Score: 4", logprobs=[TokenLogprob(token="Score: ", logprob=0.0), step])
    >>> spec = ScoreParserSpec(min=0, max=5)
    >>> round(expected_score(c, parse_score(c.text, spec), spec).score, 6)
    3.75
    """
    if not parsed.ok or parsed.score is None:
        return parsed
    steps = completion.logprobs or []
    target = _fmt(parsed.score)
    index = next((i for i in range(len(steps) - 1, -1, -1) if steps[i].token.strip() == target), None)
    if index is None:
        parsed.details["expected"] = "no single token carries the score; kept the parsed score"
        return parsed
    step = steps[index]
    mass: dict[int, float] = {}
    seen: set[Any] = set()
    for tok, tid, lp in [(t.token, t.token_id, t.logprob) for t in step.top] + [
        (step.token, step.token_id, step.logprob)
    ]:
        key = tid if tid is not None else tok
        if key in seen or lp is None or not math.isfinite(lp) or not tok.strip().isdigit():
            continue
        seen.add(key)
        value = int(tok.strip())
        if _in_range(float(value), spec.min, spec.max) is None:
            mass[value] = mass.get(value, 0.0) + math.exp(lp)
    total = sum(mass.values())
    if total <= 0:
        return parsed
    dist = {str(v): m / total for v, m in sorted(mass.items())}
    parsed.details["score_distribution"] = dist
    parsed.details["greedy_score"] = parsed.score
    parsed.score = sum(int(v) * p for v, p in dist.items())
    return parsed


# -- json ------------------------------------------------------------------------------------------
def resolve_schema(spec: JsonParserSpec) -> type[BaseModel]:
    """Import the pydantic model named ``"package.module:Model"``."""
    try:
        obj = import_object(
            spec.schema_, "schema", callable_required=False, error=TemplateError, form="package.module:Model"
        )
    except TemplateError as exc:
        raise TemplateError(f"json parser schema cannot be imported: {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, BaseModel)):
        raise TemplateError(f"json parser schema {spec.schema_!r} is not a pydantic model class")
    return obj


def json_schema_of(spec: JsonParserSpec) -> dict[str, Any]:
    """The JSON schema sent to engines that support guided decoding."""
    return resolve_schema(spec).model_json_schema()


def _json_candidates(text: str) -> list[str]:
    stripped = text.strip()
    out = [stripped]
    first, last = stripped.find("{"), stripped.rfind("}")
    if 0 <= first < last and (first, last) != (0, len(stripped) - 1):
        out.append(stripped[first : last + 1])
    return out


def parse_json(text: str, spec: JsonParserSpec) -> Parsed:
    """Validate the output (or the outermost ``{...}`` in it) against the schema model.

    >>> spec = JsonParserSpec(schema="rlaif.judges.parsers:ExampleVerdict", score_field="score", min=1, max=10)
    >>> parse_json('Sure: {"reason": "clear", "score": 8}', spec).score
    8.0
    >>> parse_json('{"reason": "clear"}', spec).reason
    "does not match ExampleVerdict: field 'score': Field required"
    """
    model = resolve_schema(spec)
    error: ValidationError | None = None
    obj = None
    for candidate in _json_candidates(text):
        try:
            obj = model.model_validate_json(candidate)
            break
        except ValidationError as exc:
            error = error or exc
    if obj is None:
        if error is None:
            return Parsed.invalid("empty output")
        problem = describe_validation_error(error, limit=1, root="(object)")
        return Parsed.invalid(f"does not match {model.__name__}: {problem}")
    data = json.loads(obj.model_dump_json())
    result = Parsed(ok=True, parsed=data, details={"source": "json"})
    if spec.score_field:
        value = data.get(spec.score_field)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return Parsed.invalid(f"field '{spec.score_field}' is not a number: {value!r}")
        problem = _in_range(float(value), spec.min, spec.max)
        if problem:
            return Parsed.invalid(problem)
        result.score = float(value)
    if spec.choice_field:
        value = data.get(spec.choice_field)
        if spec.labels is not None and value not in spec.labels:
            return Parsed.invalid(f"field '{spec.choice_field}' = {value!r} is not one of {spec.labels}")
        result.choice = None if value is None else str(value)
    return result


class ExampleVerdict(BaseModel):
    """A small schema used by the docstring examples and as a template for users' own."""

    reason: str
    score: int


# -- dispatch --------------------------------------------------------------------------------------
def parse_completion(completion: Completion, spec: Any) -> Parsed:
    """Apply whichever parser the template declares."""
    if isinstance(spec, ScoreParserSpec):
        parsed = parse_score(completion.text, spec)
    elif isinstance(spec, ChoiceParserSpec):
        if spec.source == "logprobs":
            return choice_probabilities(completion, spec)
        parsed = parse_choice_text(completion.text, spec)
    elif isinstance(spec, JsonParserSpec):
        parsed = parse_json(completion.text, spec)
    else:
        raise TemplateError(f"unknown parser specification: {spec!r}")
    if not parsed.ok and parsed.reason:
        parsed.reason = _with_finish(parsed.reason, completion)
    return parsed
