"""Label-probability judge: each response judged ALONE, scored by the probability of a good label.

Why: a small pairwise judge follows position, not content (SmolLM2-135M names the first reply for
nearly every pair, by an amount that varies pair to pair, so calibration cannot remove it). Judging
one response at a time has no order, hence no position bias. The score is the model's probability of
the "good" label ("No" to "Is this reply harmful?"), renormalised over the allowed labels, read from
the answer token's top-20 log-probabilities (a label split into several tokens is read from its
first token); two responses to one prompt are compared by score, so a
pairwise preference comes from two independent, position-free judgments.

A template selects this judge with ``judge: pointwise`` and a choice parser
(``parser: {type: choice, labels: [Yes, No], source: logprobs}``). Its
``metadata: {judge_options: {...}}`` may set ``good_label`` (default: the first label) and
``guided`` (default true: the answer is constrained to one label, vLLM guided choice, so the answer
token is always a label); only the judge spec reads them (``from_template(LabelProbabilityJudge, ...)``
from Python).

Guarantees: one ``engine.generate`` call per ``score`` call (greedy, one judgment per response); a
prompt longer than the context, or an answer whose top-20 holds no label, is an invalid judgment
with its reason, never a default score. Non-guarantees: a label outside the answer token's top-20 counts 0; with guided choice vLLM may
report the probabilities after the choice mask, which leaves the labels' ratio, hence the score,
unchanged. A label split into tokens is scored by its first token only.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

from rlaif.engines.base import Sampling
from rlaif.errors import TemplateError
from rlaif.generation.context import generate_checked
from rlaif.judges.base import (
    ScoreJudge,
    item_ids,
    judge_items,
    judgment_by,
    render_response_requests,
    require_variables,
    resolve_template,
)
from rlaif.judges.parsers import Parsed
from rlaif.judges.pointwise import PointwiseResult
from rlaif.prompts import ChoiceParserSpec, Template
from rlaif.records import Completion, Judgment, Message


def check_label_template(template: Template) -> ChoiceParserSpec:
    """The template's choice parser; a TemplateError naming the file if it cannot drive this judge."""
    spec = template.parser
    where = f"template '{template.name}' ({template.path})"
    if not isinstance(spec, ChoiceParserSpec) or spec.source != "logprobs":
        raise TemplateError(
            f"{where}: a label-probability judge needs parser {{type: choice, source: logprobs}}"
        )
    require_variables(template, ("prompt", "response"), "label-probability")
    return spec


def first_token_label_probabilities(completion: Completion, labels: Sequence[str]) -> Parsed:
    """Each label's probability, renormalised over the labels, from the answer token's top-k.

    The answer token is the first generated token that is not blank. An alternative counts for a
    label when its text, stripped, starts that label and no other one ("N" or "No" for "No"), so
    labels that a tokenizer splits ("N" + "o") are read from their first token. Invalid when no
    label is among the alternatives: that response's score is unknown, not 0.5.

    >>> from rlaif.records import TokenLogprob as S, TopLogprob as T
    >>> top = [T(token=" Yes", token_id=1, logprob=math.log(0.3)), T(token="N", token_id=2, logprob=math.log(0.5))]
    >>> c = Completion(text="N", logprobs=[S(token="N", token_id=2, logprob=math.log(0.5), top=top)])
    >>> {k: round(v, 3) for k, v in first_token_label_probabilities(c, ["Yes", "No"]).probabilities.items()}
    {'Yes': 0.375, 'No': 0.625}
    """
    steps = [s for s in completion.logprobs or [] if s.token.strip()]
    if not steps:
        return Parsed.invalid("no answer token with log-probabilities in the output")
    step, seen = steps[0], set()
    mass = dict.fromkeys(labels, 0.0)
    for token, token_id, logprob in [(t.token, t.token_id, t.logprob) for t in step.top] + [
        (step.token, step.token_id, step.logprob)
    ]:
        text = token.strip()
        if (token_id if token_id is not None else token) in seen or not text or not math.isfinite(logprob):
            continue
        seen.add(token_id if token_id is not None else token)
        starts = [label for label in labels if label.startswith(text)]
        if len(starts) == 1:
            mass[starts[0]] += math.exp(logprob)
    total = sum(mass.values())
    details = {"source": "logprobs", "answer_token": step.token, "label_mass": round(total, 6)}
    if total <= 0.0:
        return Parsed.invalid(
            f"none of the labels ({', '.join(labels)}) starts any of the top-{len(step.top)} alternatives "
            f"of the answer token (sampled {step.token!r})",
            **details,
        )
    probs = {label: m / total for label, m in mass.items()}
    return Parsed(ok=True, choice=max(probs, key=probs.get), probabilities=probs, details=details)


class LabelProbabilityJudge(ScoreJudge):
    """Scores ``(conversation, response)`` items by P(good label); see the module docstring."""

    kind = "pointwise"
    spec_kind = "label_probability"

    def __init__(
        self,
        engine: Any,
        template: str | os.PathLike | Template = "harm_yesno",
        good_label: str | None = None,
        guided: bool | None = None,
        adapter: str | None = None,
        kind: str | None = None,
    ):
        self.engine = engine
        self.template = resolve_template(template)
        self.spec = check_label_template(self.template)
        self.good_label = str(self.spec.labels[0] if good_label is None else good_label)
        if self.good_label not in self.spec.labels:
            raise TemplateError(
                f"template '{self.template.name}': good_label {self.good_label!r} is not one of the labels "
                f"{self.spec.labels}"
            )
        self.guided = True if guided is None else bool(guided)
        self.adapter = adapter
        self.record_kind = kind or self.kind
        constrain = self.guided and engine is not None and engine.supports_guided_json
        # Unconstrained, a few tokens leave room for a leading space or bracket before the label.
        self.sampling = Sampling(
            temperature=0.0,
            max_tokens=1 if constrain else 4,
            logprobs=20,
            choice=self.spec.labels if constrain else None,
        )

    def score(
        self, items: Sequence[tuple[Sequence[Message], str]], ids: Sequence[str] | None = None
    ) -> list[PointwiseResult]:
        """P(good label) per (conversation, response), in input order; one generate call."""
        items = judge_items(items)
        requests = render_response_requests(self.template, items)
        keys = item_ids(ids, len(items), "label-probability", [r.prompt_hash for r in requests])
        outputs = generate_checked(self.engine, [r.payload for r in requests], self.sampling, self.adapter)
        results = []
        for i, out in enumerate(outputs):
            if isinstance(out, str):
                judgment = self._judgment(i, requests[i], keys[i], "", None, out)
            else:
                judgment = self._judgment(i, requests[i], keys[i], out[0].text, self._parse(out[0]))
            results.append(PointwiseResult.of([judgment]))
        return results

    def _parse(self, completion: Completion) -> Parsed:
        parsed = first_token_label_probabilities(completion, self.spec.labels)
        if not parsed.ok or parsed.probabilities is None:
            return parsed
        return dataclasses.replace(parsed, score=parsed.probabilities[self.good_label])

    def _judgment(
        self,
        index: int,
        request,
        key: str,
        raw: str,
        parsed: Parsed | None,
        invalid_reason: str | None = None,
    ) -> Judgment:
        return judgment_by(
            self,
            request=request,
            key=(key, "label-probability"),
            raw_output=raw,
            parsed=parsed,
            invalid_reason=invalid_reason,
            metadata={"item_index": index, "good_label": self.good_label},
        )
