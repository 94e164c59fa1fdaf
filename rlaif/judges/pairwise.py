"""Pairwise A/B judge: both orders shown, soft labels combined, position consistency flagged.

Why both orders: judges prefer a position (small ones heavily), so each pair is shown as (a, b) and
as (b, a). Order ``AB`` shows response_a first, so P_AB(first label) = P(a better); order ``BA``
shows response_b first, so P(a better) = 1 - P_BA(first label). The soft label is the mean of those
over the orders that could be read; ``consistent`` says whether both orders prefer the same response.

Guarantees:
- every (item, order) request goes to the engine in ONE ``generate`` call;
- an order whose answer cannot be read is an invalid judgment (with the reason) and is left out of
  the mean; an item with no readable order has ``prob_a=None`` and ``valid=False`` - never 0.5;
- one Judgment per order shown, in the order [AB, BA].

Options for small judges (see :mod:`rlaif.judges.calibration`):
- ``guided``: the answer is constrained to exactly one of the labels (vLLM guided choice), so every
  answer is readable; the label probabilities still come from the model's own top-k, renormalised
  over the labels;
- ``calibrate``: combine the orders in logit space and subtract the batch's first-position bias;
  ``consistent`` then means the two orders agree after that subtraction;
- ``self_check``: ``refuse`` marks every judgment of a batch invalid (with the reason) and ``error``
  raises :class:`JudgeUnreliableError` when calibrated order agreement is not above chance.
Templates may set these defaults in their front matter (``metadata: {judge_options: {...}}``:
the judge spec (:mod:`rlaif.judges.spec`) reads them; from Python,
``from_template(PairwiseJudge, engine, ...)`` takes them, the bare constructor does not).

Non-guarantee: with ``source: text`` (or a json parser) a readable order counts as probability 1 or
0 for the label it names; only ``source: logprobs`` gives graded soft labels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlaif.engines.base import Sampling
from rlaif.errors import RlaifError, TemplateError
from rlaif.generation.context import generate_checked
from rlaif.judges.base import (
    CompareJudge,
    Request,
    conversation_text,
    item_ids,
    judge_items,
    judgment_by,
    render_request,
    require_variables,
    resolve_template,
)
from rlaif.judges.calibration import (
    SELF_CHECK_MODES,
    SelfCheck,
    calibrate_pair,
    first_position_bias,
    self_check,
)
from rlaif.judges.parsers import (
    ChoiceParserSpec,
    JsonParserSpec,
    Parsed,
    json_schema_of,
    parse_completion,
)
from rlaif.prompts import Template, load_template
from rlaif.records import Judgment, Message

ORDER_AB, ORDER_BA = "AB", "BA"
DEFAULT_TOP_LOGPROBS = 20


class JudgeUnreliableError(RlaifError):
    """A batch's calibrated position consistency is at chance (``self_check="error"``)."""


@dataclass
class PairwiseResult:
    """P(response_a is better), combined over the readable orders, with per-order judgments."""

    prob_a: float | None
    consistent: bool | None
    judgments: list[Judgment] = field(default_factory=list)
    valid: bool = False
    prob_a_unclamped: float | None = None
    principle: str | None = None

    @property
    def preferred(self) -> str | None:
        """'a', 'b' or 'tie' by the combined label; None when invalid."""
        return None if self.prob_a is None else _side(self.prob_a)


def _side(p: float) -> str:
    return "a" if p > 0.5 else "b" if p < 0.5 else "tie"


def combine_orders(p_a_per_order: Sequence[float | None]) -> tuple[float | None, bool | None]:
    """Mean P(a) over readable orders, and whether two readable orders agree.

    Each entry is P(response_a better) as read from one order (already converted from the label
    shown first), or None when that order was unreadable.

    >>> combine_orders([0.8, 0.6])
    (0.7, True)
    >>> combine_orders([0.8, 0.3])
    (0.55, False)
    >>> combine_orders([None, 0.3])
    (0.3, None)
    >>> combine_orders([None, None])
    (None, None)
    """
    valid = [p for p in p_a_per_order if p is not None]
    if not valid:
        return None, None
    prob = sum(valid) / len(valid)
    consistent = None
    if len(valid) >= 2:
        consistent = len({_side(p) for p in valid}) == 1
    return prob, consistent


def p_first(parsed: Parsed, labels: Sequence[str]) -> float | None:
    """P(the response shown first is better) from one readable judgment."""
    if not parsed.ok:
        return None
    if parsed.probabilities is not None:
        return parsed.probabilities.get(labels[0], 0.0)
    if parsed.choice == labels[0]:
        return 1.0
    if parsed.choice == labels[1]:
        return 0.0
    return None


def clamp_prob(p: float | None, clamp: tuple[float, float] | None) -> float | None:
    if p is None or clamp is None:
        return p
    lo, hi = clamp
    return min(max(p, lo), hi)


def cot_template_for(template: Template) -> Template:
    """The chain-of-thought sibling ``<name>_cot`` of a template whose parser has no marker."""
    if isinstance(template.parser, ChoiceParserSpec) and template.parser.marker:
        return template
    try:
        return load_template(f"{template.name}_cot")
    except TemplateError:
        raise TemplateError(
            f"chain_of_thought needs a template whose parser has a 'marker' (e.g. 'Answer:'); "
            f"'{template.name}' has none and no '{template.name}_cot' template exists"
        ) from None


class PairwiseJudge(CompareJudge):
    """Compares ``(conversation, response_a, response_b)`` items; see the module docstring."""

    kind = "pairwise"
    spec_kind = "pairwise"
    required_variables = ("prompt", "response_a", "response_b")

    def __init__(
        self,
        engine: Any,
        template: str | os.PathLike | Template = "pairwise",
        both_orders: bool = True,
        chain_of_thought: bool = False,
        sampling: Sampling | None = None,
        adapter: str | None = None,
        clamp: tuple[float, float] | None = None,
        kind: str | None = None,
        guided: bool | None = None,
        calibrate: bool | None = None,
        self_check: str | None = None,
    ):
        self.engine = engine
        tpl = resolve_template(template)
        if chain_of_thought:
            tpl = cot_template_for(tpl)
        self.guided, self.calibrate = bool(guided), bool(calibrate)
        self.self_check_mode = "off" if self_check is None else self_check
        if self.self_check_mode not in SELF_CHECK_MODES:
            raise ValueError(f"self_check must be one of {', '.join(SELF_CHECK_MODES)}, got {self_check!r}")
        self.last_self_check: SelfCheck | None = None
        self.template = tpl
        spec = tpl.parser
        labels = self._labels(spec)
        require_variables(tpl, self.required_variables, self.kind)
        if clamp is not None and not (0.0 <= clamp[0] <= clamp[1] <= 1.0):
            raise ValueError(f"clamp must satisfy 0 <= low <= high <= 1, got {clamp}")
        self.spec = spec
        self.labels = labels
        self.chain_of_thought = isinstance(spec, ChoiceParserSpec) and spec.marker is not None
        self.both_orders = both_orders
        self.adapter = adapter
        self.clamp = clamp
        self.record_kind = kind or self.kind
        self.sampling = self._default_sampling() if sampling is None else self._with_own_reading(sampling)

    def _labels(self, spec: Any) -> list[str]:
        if isinstance(spec, ChoiceParserSpec) and len(spec.labels) == 2:
            return list(spec.labels)
        if isinstance(spec, JsonParserSpec) and spec.choice_field and spec.labels and len(spec.labels) == 2:
            return list(spec.labels)
        raise TemplateError(
            f"template '{self.template.name}' ({self.template.path}): a {self.kind} judge needs a 'choice' "
            "parser with two labels, or a 'json' parser with choice_field and two labels"
        )

    def _default_sampling(self) -> Sampling:
        """Greedy; the answer token's top-k when reading probabilities; room to reason with CoT."""
        spec = self.spec
        s = Sampling(temperature=0.0, max_tokens=384 if self.chain_of_thought else 8)
        if isinstance(spec, ChoiceParserSpec) and spec.source == "logprobs":
            s = s.model_copy(update={"logprobs": DEFAULT_TOP_LOGPROBS})
        if self.guided and isinstance(spec, ChoiceParserSpec) and spec.marker is None:
            if self.engine is not None and self.engine.supports_guided_json:
                s = s.model_copy(update={"choice": list(spec.labels), "max_tokens": 4})
        if isinstance(spec, JsonParserSpec):
            s = s.model_copy(update={"max_tokens": 256})
            if self.engine.supports_guided_json:
                s = s.model_copy(update={"json_schema": json_schema_of(spec)})
        return s

    def _with_own_reading(self, sampling: Sampling) -> Sampling:
        """A caller's sampling plus what the judge needs to read its answer (guided JSON or choice,
        top-k log-probabilities) where the caller set none: a config's sampling block has only
        temperature, top_p and max_tokens."""
        own = self._default_sampling()
        if sampling.json_schema or sampling.choice or sampling.regex:
            return sampling
        update = {
            k: getattr(own, k) for k in ("json_schema", "choice", "logprobs") if getattr(own, k) is not None
        }
        if sampling.logprobs is not None:
            update.pop("logprobs", None)
        return sampling.model_copy(update=update)

    # Subclasses add template variables per item (the principle judge adds the principle).
    def _extra_variables(self, keys: list[str], items: list) -> list[dict[str, Any]]:
        return [{} for _ in items]

    def compare(
        self,
        items: Sequence[tuple[Sequence[Message], str, str]],
        ids: Sequence[str] | None = None,
    ) -> list[PairwiseResult]:
        """Judge every (conversation, response_a, response_b); results in input order."""
        items = judge_items(items)
        prompts = [conversation_text(conv) for conv, _, _ in items]
        contents = [p + "\x00" + a + "\x00" + b for p, (_, a, b) in zip(prompts, items, strict=True)]
        keys = item_ids(ids, len(items), self.kind, contents)
        extras = self._extra_variables(keys, items)
        orders = [ORDER_AB, ORDER_BA] if self.both_orders else [ORDER_AB]
        jobs: list[tuple[int, str, Request]] = []
        for i, ((conv, a, b), prompt, extra) in enumerate(zip(items, prompts, extras, strict=True)):
            for order in orders:
                first, second = (a, b) if order == ORDER_AB else (b, a)
                request = render_request(
                    self.template,
                    prompt=prompt,
                    response_a=first,
                    response_b=second,
                    conversation=[m.model_dump() for m in conv],
                    **extra,
                )
                jobs.append((i, order, request))
        outputs = generate_checked(self.engine, [r.payload for _, _, r in jobs], self.sampling, self.adapter)

        per_item: list[list[tuple[Judgment, float | None]]] = [[] for _ in items]
        for (i, order, request), out in zip(jobs, outputs, strict=True):
            per_item[i].append(self._judge_one(i, order, request, out, keys[i], extras[i]))
        if not self.calibrate:
            results = [self._combine(js) for js in per_item]
        else:
            results = self._combine_calibrated(per_item)
        return self._apply_self_check(results)

    def _combine_calibrated(
        self, per_item: list[list[tuple[Judgment, float | None]]]
    ) -> list[PairwiseResult]:
        """Orders combined in logit space with the batch's first-position bias removed."""

        def p_first_of(j: Judgment) -> float | None:
            return j.metadata.get("p_first_shown") if j.status == "ok" else None

        bias = first_position_bias([[p_first_of(j) for j, _ in js] for js in per_item])
        results = []
        for js in per_item:
            cal = calibrate_pair([p_first_of(j) for j, _ in js], [j.orders[0] for j, _ in js], bias)
            judgments = [
                j.model_copy(
                    update={
                        "consistent": cal.consistent,
                        "metadata": {
                            **j.metadata,
                            "p_response_a_calibrated": p,
                            "first_position_bias_logit": bias,
                        },
                    }
                )
                for (j, _), p in zip(js, cal.per_order_prob_a, strict=True)
            ]
            results.append(
                PairwiseResult(
                    prob_a=clamp_prob(cal.prob_a, self.clamp),
                    consistent=cal.consistent,
                    judgments=judgments,
                    valid=cal.prob_a is not None,
                    prob_a_unclamped=cal.prob_a,
                    principle=judgments[0].principle if judgments else None,
                )
            )
        return results

    def _apply_self_check(self, results: list[PairwiseResult]) -> list[PairwiseResult]:
        """Refuse (or raise) when the batch's order agreement is not above chance; see calibration."""
        if self.self_check_mode == "off" and not self.calibrate:
            return results
        bias = None
        for r in results:
            for j in r.judgments:
                bias = j.metadata.get("first_position_bias_logit", bias)
        check = self_check([r.consistent for r in results], bias)
        self.last_self_check = check  # measured with calibration even when not acted on
        if check.passed is not False or self.self_check_mode == "off":
            return results
        if self.self_check_mode == "error":
            raise JudgeUnreliableError(f"judge '{self.template.name}': {check.reason}")
        refused = []
        for r in results:
            judgments = [
                j.model_copy(
                    update={
                        "status": "invalid",
                        "invalid_reason": check.reason,
                        "score": None,
                        "choice": None,
                        "probabilities": None,
                        "metadata": {**j.metadata, "refused_label": j.choice, "refused_prob_a": r.prob_a},
                    }
                )
                for j in r.judgments
            ]
            refused.append(PairwiseResult(None, r.consistent, judgments, False, None, r.principle))
        return refused

    def _judge_one(
        self, index: int, order: str, request: Request, out: list | str, key: str, extra: dict[str, Any]
    ) -> tuple[Judgment, float | None]:
        if isinstance(out, str):
            raw, parsed, reason = "", None, out
        else:
            completion = out[0]
            raw, parsed, reason = completion.text, parse_completion(completion, self.spec), None
        p_shown_first = p_first(parsed, self.labels) if parsed is not None else None
        p_a = None if p_shown_first is None else (p_shown_first if order == ORDER_AB else 1.0 - p_shown_first)
        if parsed is not None and parsed.ok and p_a is None:
            reason = "the judgment names no preference between the two labels"
        judgment = judgment_by(
            self,
            request=request,
            key=(key, order),
            raw_output=raw,
            parsed=parsed,
            invalid_reason=reason,
            orders=[order],
            principle=self._principle_of(extra),
            metadata={
                "item_index": index,
                "p_response_a": p_a,
                "p_first_shown": p_shown_first,
                **({"principle_text": extra["principle"]} if "principle" in extra else {}),
            },
        )
        return judgment, (p_a if judgment.status == "ok" else None)

    def _principle_of(self, extra: dict[str, Any]) -> str | None:
        return None

    def _combine(self, pairs: list[tuple[Judgment, float | None]]) -> PairwiseResult:
        raw_prob, consistent = combine_orders([p for _, p in pairs])
        judgments = [j for j, _ in pairs]
        if consistent is not None:
            judgments = [j.model_copy(update={"consistent": consistent}) for j in judgments]
        return PairwiseResult(
            prob_a=clamp_prob(raw_prob, self.clamp),
            consistent=consistent,
            judgments=judgments,
            valid=raw_prob is not None,
            prob_a_unclamped=raw_prob,
            principle=judgments[0].principle if judgments else None,
        )
