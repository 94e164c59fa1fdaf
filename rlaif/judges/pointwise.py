"""Pointwise rubric judge: K sampled judgments per response, averaged; invalid ones re-asked.

Why sampled and averaged: a single judgment from a small judge is noisy; Self-Rewarding averages
three sampled judgments per response before picking best vs worst.

Guarantees:
- one ``engine.generate`` call for the first round (``n=K`` for every response), and at most one
  per retry round, covering only the responses that still lack valid judgments;
- never more than K valid judgments per response: a retry only fills slots that were invalid;
- every judgment made is returned (valid or not, with its attempt number and reason); the mean is
  over valid scores only and is ``None`` when none is valid.

Options for small judges (also settable by a template's ``metadata: {judge_options: ...}``, which
only the judge spec reads: use ``from_template(PointwiseJudge, ...)`` from Python):
``guided_regex`` constrains the output to a regex (vLLM guided decoding), e.g. ``Score: [0-5]``, so
the judge cannot wander off instead of scoring; ``expected_score`` replaces the integer read from
the text by its expectation under the model's probabilities for the label: on a 0-9 scale the score
token's top-20 (:func:`rlaif.judges.parsers.expected_score`), on a scale with longer labels (1-10)
every label scored as a whole continuation of the output (:mod:`rlaif.judges.label_scores`, one
extra scoring call per round; the engine must score text).

Non-guarantees: with ``sampling.seed`` set, vLLM seeds every request of a call with that same seed,
so different responses' judgments draw from one random stream (wrap the engine in
:class:`rlaif.generation.retry.PerRequestSeeds` to derive a seed per request if that matters;
unseeded sampling is independent). In a retry round every response that needs answers gets as many
samples as the neediest one (one Sampling per call); the surplus samples are not read and not
recorded. The retry loop itself is :func:`rlaif.generation.retry.sample_until_valid`, shared with
the feedback sources.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlaif.engines.base import Sampling
from rlaif.errors import TemplateError
from rlaif.generation.retry import sample_until_valid
from rlaif.judges.base import (
    ScoreJudge,
    item_ids,
    judge_items,
    judgment_by,
    render_response_requests,
    require_variables,
    resolve_template,
)
from rlaif.judges.label_scores import label_distributions, needs_continuations, scale_labels, score_prefix
from rlaif.judges.parsers import (
    JsonParserSpec,
    Parsed,
    ScoreParserSpec,
    expected_score,
    json_schema_of,
    parse_completion,
)
from rlaif.prompts import Template
from rlaif.records import Judgment, Message


@dataclass
class PointwiseResult:
    """All judgments for one response; ``mean_score`` over the valid ones (None if there are none)."""

    mean_score: float | None
    judgments: list[Judgment] = field(default_factory=list)
    n_valid: int = 0

    @property
    def scores(self) -> list[float]:
        return [j.score for j in self.judgments if j.status == "ok" and j.score is not None]

    @classmethod
    def of(cls, judgments: list[Judgment]) -> PointwiseResult:
        """One response's result from all its judgments: every score judge reports the same way,
        the mean over the valid scores, never a default for invalid ones."""
        result = cls(mean_score=None, judgments=judgments)
        scores = result.scores
        result.mean_score = sum(scores) / len(scores) if scores else None
        result.n_valid = len(scores)
        return result


class PointwiseJudge(ScoreJudge):
    """Scores ``(conversation, response)`` items with a rubric template whose parser yields a score."""

    kind = "pointwise"
    spec_kind = "rubric"

    def __init__(
        self,
        engine: Any,
        template: str | os.PathLike | Template = "self_rewarding_rubric",
        samples: int = 3,
        max_retries: int = 2,
        sampling: Sampling | None = None,
        adapter: str | None = None,
        kind: str | None = None,
        guided_regex: str | None = None,
        expected_score: bool | None = None,
    ):
        if samples < 1:
            raise ValueError("samples must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.engine = engine
        self.template = resolve_template(template)
        spec = self.template.parser
        if not (isinstance(spec, ScoreParserSpec) or (isinstance(spec, JsonParserSpec) and spec.score_field)):
            raise TemplateError(
                f"template '{self.template.name}' ({self.template.path}): a pointwise judge needs a "
                "'score' parser or a 'json' parser with score_field"
            )
        require_variables(self.template, ("prompt", "response"), "pointwise")
        self.guided_regex = guided_regex
        self.expected_score = bool(expected_score)
        if self.expected_score and not isinstance(spec, ScoreParserSpec):
            raise TemplateError(f"template '{self.template.name}': expected_score needs a 'score' parser")
        self.spec = spec
        where = f"template '{self.template.name}' ({self.template.path})"
        self.labels = (
            scale_labels(spec, where=where) if self.expected_score and needs_continuations(spec) else None
        )
        self.samples = samples
        self.max_retries = max_retries
        self.adapter = adapter
        self.record_kind = kind or self.kind
        base = sampling or Sampling(temperature=0.7, top_p=0.9, max_tokens=256)
        update: dict[str, Any] = {"n": samples}
        if isinstance(spec, JsonParserSpec) and engine.supports_guided_json:
            update["json_schema"] = json_schema_of(spec)
        elif self.guided_regex and engine is not None and engine.supports_guided_json:
            update["regex"] = self.guided_regex
        if self.expected_score and self.labels is None and base.logprobs is None:
            update["logprobs"] = 20
        self.sampling = base.model_copy(update=update)

    def score(
        self, items: Sequence[tuple[Sequence[Message], str]], ids: Sequence[str] | None = None
    ) -> list[PointwiseResult]:
        """Judge every (conversation, response); results in input order."""
        items = judge_items(items)
        requests = render_response_requests(self.template, items)
        keys = item_ids(ids, len(items), "pointwise", [r.prompt_hash for r in requests])
        judgments: list[list[Judgment]] = [[] for _ in items]
        need = [self.samples] * len(items)  # valid judgments still missing per item
        graded: list[tuple[int, int, str]] = []  # (item, judgment, prefix) scored by label continuations

        def samplings(pending: list[int], attempt: int) -> list[Sampling]:
            sampling = self.sampling.model_copy(update={"n": max(need[i] for i in pending)})
            if attempt and sampling.seed is not None:
                sampling = sampling.model_copy(update={"seed": sampling.seed + attempt})
            return [sampling] * len(pending)

        def take(i: int, completions: list, attempt: int) -> bool:
            for completion in completions[: need[i]]:
                parsed = parse_completion(completion, self.spec)
                if self.expected_score and self.labels is None:
                    parsed = expected_score(completion, parsed, self.spec)
                sample = len(judgments[i])
                if self.labels is not None and parsed.ok:
                    graded.append((i, sample, score_prefix(completion.text, self.spec) or ""))
                judgments[i].append(
                    self._judgment(i, requests[i], keys[i], attempt, sample, completion.text, parsed)
                )
                need[i] -= judgments[i][-1].status == "ok"
            return need[i] > 0

        report = sample_until_valid(
            self.engine, [r.payload for r in requests], samplings=samplings, take=take,
            max_retries=self.max_retries, adapter=self.adapter,
        )  # fmt: skip
        self._grade(graded, requests, judgments)
        for i, detail in report.too_long.items():  # not sent: retrying cannot help
            judgments[i].append(
                self._judgment(i, requests[i], keys[i], 0, -1, "", None, f"{detail} (request not sent)")
            )
        return [PointwiseResult.of(js) for js in judgments]

    def _grade(self, graded: list, requests: list, judgments: list[list[Judgment]]) -> None:
        """Replace each graded judgment's read score by its expectation over the scale's labels."""
        jobs = [(requests[i].payload, prefix) for i, _, prefix in graded]
        dists = label_distributions(self.engine, jobs, self.labels or [], adapter=self.adapter)
        for (i, j, _), dist in zip(graded, dists, strict=True):
            old = judgments[i][j]
            meta = dict(old.metadata)
            parse = {**meta.get("parse", {}), "greedy_score": old.score}
            if dist is None:
                parse["expected"] = "the labels could not be scored (context); kept the parsed score"
                judgments[i][j] = old.model_copy(update={"metadata": {**meta, "parse": parse}})
                continue
            parse["score_distribution"] = dist
            expected = sum(int(label) * p for label, p in dist.items())
            judgments[i][j] = old.model_copy(update={"score": expected, "metadata": {**meta, "parse": parse}})

    def _judgment(
        self,
        index: int,
        request,
        key: str,
        attempt: int,
        sample: int,
        raw: str,
        parsed: Parsed | None,
        invalid_reason: str | None = None,
    ) -> Judgment:
        return judgment_by(
            self,
            request=request,
            key=(key, str(sample), str(attempt)),
            raw_output=raw,
            parsed=parsed,
            invalid_reason=invalid_reason,
            metadata={"sample": sample, "attempt": attempt, "item_index": index},
        )
