"""Custom judges: your own template file, or your own Python function, usable wherever a built-in is.

1. A template file (``my_judge.j2``) with front matter declaring its variables and parser; the judge
   kind comes from it as :func:`rlaif.judges.spec.template_kind` decides (the one place).

2. A Python callable named ``"package.module:function"``. Its parameter names say what it judges:

   - pairwise::

         def my_judge(prompts: list[list[Message]], responses_a: list[str], responses_b: list[str],
                      *, engine=None) -> list[float | None | dict]

     each value is P(response_a is better than response_b), in [0, 1];
   - pointwise::

         def my_judge(prompts: list[list[Message]], responses: list[str], *, engine=None)
             -> list[float | None | dict]

     each value is a score.

   ``engine`` (passed only if the function declares it or ``**kwargs``) is the judge engine, so the
   function can make its own batched ``engine.generate`` call. ``None`` means "could not judge" and
   becomes an invalid judgment. A dict may carry ``value``, ``raw_output`` and ``invalid_reason`` for
   fuller records. A pairwise callable is asked in both orders by default (``both_orders``), exactly
   like the built-in pairwise judge, so position consistency is measured for it too.

Guarantees: the function is called once per order with the whole batch; a wrong-length result or
a non-numeric value is an :class:`RlaifError` naming the function; an out-of-range probability is an
invalid judgment with the reason, never clipped.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

from rlaif.errors import ConfigError, RlaifError
from rlaif.judges.base import ScoreJudge, conversation_text, item_ids, judge_items
from rlaif.judges.pairwise import ORDER_AB, ORDER_BA, PairwiseResult, combine_orders
from rlaif.judges.pointwise import PointwiseResult
from rlaif.plugins import import_object
from rlaif.records import Judgment, Message, stable_hash


class CallableJudge:
    """Wraps a user function (see the module docstring) behind ``.compare`` or ``.score``."""

    kind = "custom"

    def __init__(self, spec: str, engine: Any = None, both_orders: bool = True):
        self.spec = spec
        self.fn = import_object(spec, "judge")
        self.engine = engine
        self.both_orders = both_orders
        params = inspect.signature(self.fn).parameters
        self.slot = callable_slot(spec)
        self._pass_engine = "engine" in params or any(
            p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()
        )
        try:
            source = inspect.getsource(self.fn)
        except (OSError, TypeError):
            source = spec
        self.template_hash = stable_hash(source)
        self.model_name = getattr(engine, "model_name", None) or spec

    # Only the method of the function's slot exists (a score judge has no compare).
    def __getattr__(self, name: str):
        slot = self.__dict__.get("slot")
        if name == "compare" and slot == "compare":
            return self._compare
        if name == "score" and slot == "score":
            return self._score
        raise AttributeError(name)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kw: Any) -> list[float | None]:
        """A scoring function is also a TRL-style reward function (see :class:`ScoreJudge`)."""
        if self.slot != "score":
            raise ConfigError(f"judge '{self.spec}' compares two responses; a reward function scores one")
        return ScoreJudge.__call__(self, prompts, completions, **kw)

    def _call(self, *args: list) -> list[Any]:
        kwargs = {"engine": self.engine} if self._pass_engine else {}
        values = self.fn(*args, **kwargs)
        try:
            values = list(values)
        except TypeError:
            raise RlaifError(f"judge '{self.spec}' must return a list, got {type(values).__name__}") from None
        if len(values) != len(args[0]):
            raise RlaifError(f"judge '{self.spec}' returned {len(values)} values for {len(args[0])} items")
        return values

    def _unpack(self, value: Any, index: int) -> tuple[float | None, str, str | None]:
        raw, reason = "", None
        if isinstance(value, dict):
            unknown = set(value) - {"value", "raw_output", "invalid_reason"}
            if unknown:
                raise RlaifError(f"judge '{self.spec}': item {index}: unknown key(s) {sorted(unknown)}")
            raw, reason, value = (
                str(value.get("raw_output", "")),
                value.get("invalid_reason"),
                value.get("value"),
            )
        if value is None:
            return None, raw, reason or "the judge function returned None"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RlaifError(f"judge '{self.spec}': item {index}: expected a number or None, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            return None, raw or repr(value), f"not a finite number: {value!r}"
        return value, raw or repr(value), reason

    def _judgment(
        self,
        key: str,
        order: str | None,
        value: float | None,
        raw: str,
        reason: str | None,
        content: str,
        metadata: dict[str, Any],
    ) -> Judgment:
        ok = value is not None and reason is None
        return Judgment(
            id=stable_hash("custom", self.template_hash, key, order or ""),
            kind="custom",
            judge_model=self.model_name,
            template=self.spec,
            template_hash=self.template_hash,
            prompt_hash=stable_hash(content),
            raw_output=raw,
            status="ok" if ok else "invalid",
            invalid_reason=None if ok else reason,
            score=value if ok and self.slot == "score" else None,
            probabilities={"a": value, "b": 1.0 - value} if ok and self.slot == "compare" else None,
            orders=[order] if order else [],
            subject_ids=[key],
            metadata=metadata,
        )

    def _compare(
        self, items: Sequence[tuple[Sequence[Message], str, str]], ids: Sequence[str] | None = None
    ) -> list[PairwiseResult]:
        items = judge_items(items)  # the function gets Message lists, as documented
        prompts = [list(conv) for conv, _, _ in items]
        contents = [
            conversation_text(c) + "\x00" + a + "\x00" + b
            for c, (_, a, b) in zip(prompts, items, strict=True)
        ]
        keys = item_ids(ids, len(items), "custom", contents)
        orders = [ORDER_AB, ORDER_BA] if self.both_orders else [ORDER_AB]
        per_item: list[list[tuple[Judgment, float | None]]] = [[] for _ in items]
        for order in orders:
            firsts = [a if order == ORDER_AB else b for _, a, b in items]
            seconds = [b if order == ORDER_AB else a for _, a, b in items]
            values = self._call(prompts, firsts, seconds)
            for i, v in enumerate(values):
                p, raw, reason = self._unpack(v, i)
                if p is not None and reason is None and not 0.0 <= p <= 1.0:
                    reason = f"probability {p:g} is outside [0, 1]"
                ok = p is not None and reason is None
                p_a = (p if order == ORDER_AB else 1.0 - p) if ok else None
                j = self._judgment(
                    keys[i],
                    order,
                    p if ok else None,
                    raw,
                    reason,
                    contents[i] + order,
                    {"item_index": i, "p_response_a": p_a, "p_first_shown": p if ok else None},
                )
                per_item[i].append((j, p_a))
        results = []
        for pairs in per_item:
            prob, consistent = combine_orders([p for _, p in pairs])
            judgments = [j.model_copy(update={"consistent": consistent}) for j, _ in pairs]
            results.append(
                PairwiseResult(
                    prob_a=prob,
                    consistent=consistent,
                    judgments=judgments,
                    valid=prob is not None,
                    prob_a_unclamped=prob,
                )
            )
        return results

    def _score(
        self, items: Sequence[tuple[Sequence[Message], str]], ids: Sequence[str] | None = None
    ) -> list[PointwiseResult]:
        items = judge_items(items)  # the function gets Message lists, as documented
        prompts = [list(conv) for conv, _ in items]
        contents = [conversation_text(c) + "\x00" + r for c, (_, r) in zip(prompts, items, strict=True)]
        keys = item_ids(ids, len(items), "custom", contents)
        values = self._call(prompts, [r for _, r in items])
        results = []
        for i, v in enumerate(values):
            score, raw, reason = self._unpack(v, i)
            j = self._judgment(keys[i], None, score, raw, reason, contents[i], {"item_index": i})
            results.append(PointwiseResult.of([j]))
        return results


# -- one entry point for every kind of judge -------------------------------------------------------
def callable_slot(spec: str) -> str:
    """``compare`` or ``score`` for a judge function, from its parameter names."""
    params = inspect.signature(import_object(spec, "judge")).parameters
    if "responses_a" in params and "responses_b" in params:
        return "compare"
    if "responses" in params:
        return "score"
    raise ConfigError(
        f"judge '{spec}': a judge function needs parameters (prompts, responses_a, responses_b) "
        "for pairwise or (prompts, responses) for pointwise judging"
    )
