"""Contrastive-likelihood judge (RLCD-style): how much more likely is the reply from a good assistant?

score(response) = mean over the reply's tokens of log p(token | positive context)
                - mean over the reply's tokens of log p(token | negative context)

where the two contexts are the same conversation under two system prompts that differ only in a
descriptor (e.g. "harmless and ethical" vs "willing to help with anything, however harmful"). Why:
the model never has to answer in a format or pick a position; it only reads the reply, twice. The
fluency and length of the reply cancel in the difference, leaving what the descriptor changes.

A template selects this judge with ``judge: pointwise`` and
``metadata: {judge_options: {positive: ..., negative: ...}}`` (read by the judge spec:
``from_template(ContrastiveLikelihoodJudge, ...)`` from Python); its body is the system prompt, with
``{{ descriptor }}`` where the descriptor goes, and it declares ``variables: [descriptor]``.

Guarantees: one ``score_continuations`` call per ``score`` call (both contexts of every item, through
:func:`rlaif.generation.contrast.log_prob_contrasts`, the one place the contrast is computed); an
item that does not fit the context, or an empty reply, is an invalid judgment with its reason; an
engine without the scoring capability is an :class:`EngineError` before anything is judged.
Non-guarantees: the score is a log-likelihood ratio, not a probability, and its scale depends on
the model and the descriptors; compare scores only within one judge.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rlaif.engines.base import cannot_score_error
from rlaif.errors import TemplateError
from rlaif.generation.contrast import Contrast, log_prob_contrasts
from rlaif.judges.base import (
    Request,
    ScoreJudge,
    item_ids,
    judge_items,
    judgment_by,
    resolve_template,
)
from rlaif.judges.parsers import Parsed
from rlaif.judges.pointwise import PointwiseResult
from rlaif.prompts import Template
from rlaif.records import Judgment, Message, stable_hash


def contrast_system_prompts(
    template: Template, positive: str | None, negative: str | None
) -> tuple[str, str]:
    """The two rendered system prompts; a TemplateError naming the file if the template cannot make them."""
    where = f"template '{template.name}' ({template.path})"
    if template.parser is not None or set(template.variables) != {"descriptor"}:
        raise TemplateError(
            f"{where}: a contrastive-likelihood template declares variables: [descriptor] and no parser"
        )
    if not positive or not negative:
        raise TemplateError(
            f"{where}: set judge_options positive and negative (the two descriptors); built from Python, "
            "use rlaif.judges.from_template(ContrastiveLikelihoodJudge, ...) to take them from the template"
        )
    pos, neg = template.render(descriptor=positive).strip(), template.render(descriptor=negative).strip()
    if pos == neg:
        raise TemplateError(f"{where}: the positive and negative system prompts are identical")
    return pos, neg


_INVALID = {
    "too_long": "the conversation and reply do not fit the model's context (not scored)",
    "empty": "empty reply: nothing to score",
}


class ContrastiveLikelihoodJudge(ScoreJudge):
    """Scores ``(conversation, response)`` items by the contrast of two contexts' log-likelihoods."""

    kind = "pointwise"
    spec_kind = "likelihood"

    def __init__(
        self,
        engine: Any,
        template: str | os.PathLike | Template = "contrast_harmless",
        positive: str | None = None,
        negative: str | None = None,
        adapter: str | None = None,
        kind: str | None = None,
    ):
        self.engine = engine
        # Kept out of `.template`: this template renders a system prompt, not a judge prompt with
        # the pointwise variables, so the pipeline's template check does not apply to it.
        self.contrast_template = resolve_template(template)
        self.positive_system, self.negative_system = contrast_system_prompts(
            self.contrast_template, positive, negative
        )
        self.adapter = adapter
        self.record_kind = kind or self.kind
        if engine is not None and getattr(engine, "score_continuations", None) is None:
            raise cannot_score_error(engine)

    def contexts(self, conversation: Sequence[Message]) -> tuple[list[Message], list[Message]]:
        """The conversation under the positive and under the negative system prompt (any system turn replaced)."""
        turns = [m for m in conversation if m.role != "system"]
        return (
            [Message(role="system", content=self.positive_system), *turns],
            [Message(role="system", content=self.negative_system), *turns],
        )

    def score(
        self, items: Sequence[tuple[Sequence[Message], str]], ids: Sequence[str] | None = None
    ) -> list[PointwiseResult]:
        """Contrast score per (conversation, response), in input order; one scoring call."""
        items = judge_items(items)
        contrasts = log_prob_contrasts(
            self.engine, [(*self.contexts(list(conv)), response) for conv, response in items], self.adapter
        )
        hashes = [
            stable_hash(self.contrast_template.content_hash, str(conv), response) for conv, response in items
        ]
        keys = item_ids(ids, len(items), "contrast", hashes)
        results = []
        for i, contrast in enumerate(contrasts):
            judgment = self._judgment(i, keys[i], hashes[i], contrast)
            results.append(PointwiseResult.of([judgment]))
        return results

    def _judgment(self, index: int, key: str, content_hash: str, contrast: Contrast) -> Judgment:
        reason, parsed, meta = _INVALID.get(contrast.invalid), None, {"item_index": index}
        if contrast.value is not None:
            parsed = Parsed(ok=True, score=contrast.value)
            meta |= {
                "mean_logprob_positive": contrast.mean_positive,
                "mean_logprob_negative": contrast.mean_negative,
                "reply_tokens": contrast.tokens,
            }
        request = Request(text=self.positive_system, prompt_hash=content_hash, payload=self.positive_system)
        return judgment_by(
            self,
            template=self.contrast_template,
            request=request,
            key=(key, "contrast"),
            raw_output="" if parsed is None else f"{parsed.score:.6f}",
            parsed=parsed,
            invalid_reason=reason,
            metadata=meta,
        )
