"""The generation layer, between engines and judges: how requests are sent, not what they mean.

- :mod:`.context` - context screening: a request longer than the model's context is reported as
  ``prompt_too_long`` and never sent (vLLM would reject the whole batch);
- :mod:`.retry` - batched requests with retry-until-valid (one ``generate`` call per attempt, holding
  only the requests still pending) and per-request seeds (:class:`~.retry.PerRequestSeeds`);
- :mod:`.texts` - valid texts for feedback sources: seeds derived from (seed, stage, key, attempt),
  :class:`~.output_rules.OutputRules` deciding validity, failures counted;
- text scoring: :func:`score_continuations` / :func:`require_scoring` (prompt log-probabilities,
  the engine's optional capability), and :mod:`.contrast`, the log-probability contrast of a reply
  under two contexts (:func:`log_prob_contrasts`).

Judges and every feedback source send requests through this layer, so the source contract (one call
per stage and retry round, per-request seeds, over-long prompts dropped) holds by construction.
Non-guarantee: determinism holds for one engine build on one machine.
"""

from rlaif.engines.base import require_scoring, score_continuations
from rlaif.generation.context import context_overflow, generate_checked, token_counter
from rlaif.generation.contrast import Contrast, log_prob_contrasts
from rlaif.generation.output_rules import OutputRules, clean_output, with_template_stops
from rlaif.generation.retry import (
    PerRequestSeeds,
    RetryReport,
    content_key,
    generate_each,
    sample_until_valid,
)
from rlaif.generation.texts import Sampled, failure, sample_n_with_retries, sample_with_retries

__all__ = [
    "Contrast",
    "OutputRules",
    "PerRequestSeeds",
    "RetryReport",
    "Sampled",
    "clean_output",
    "content_key",
    "context_overflow",
    "failure",
    "generate_checked",
    "generate_each",
    "log_prob_contrasts",
    "require_scoring",
    "sample_n_with_retries",
    "sample_until_valid",
    "sample_with_retries",
    "score_continuations",
    "token_counter",
    "with_template_stops",
]
