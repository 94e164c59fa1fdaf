"""How a sampled text is cleaned and accepted (``OutputRules``), and the stop strings that go with it.

Guarantees: the same text, rules and finish reason always give the same verdict; a rejected text comes
with its reason (``empty``, ``too_short``, ``too_long``, ``truncated``).
Non-guarantee: the rules check form (markers, length), never content.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlaif.engines.base import Sampling, SamplingSettings
from rlaif.errors import ConfigError


class OutputRules(BaseModel):
    """How a sampled text is cleaned and accepted.

    Why cut at markers: a model asked for one assistant turn often goes on to write the next user turn
    ("\\n\\nHuman: ..."); everything from the first marker on is not part of the answer.
    """

    model_config = ConfigDict(extra="forbid")

    cut_markers: list[str] = Field(
        default_factory=lambda: ["\n\nHuman:", "\n\nAssistant", "\nHuman:", "\nUser:"],
        description="The text is cut at the first occurrence of any of these (the next turn's marker).",
    )
    min_chars: int = Field(1, ge=1, description="Minimum length (characters, after stripping) to accept.")
    max_chars: int | None = Field(
        None, ge=1, description="Maximum length (characters) to accept; longer outputs are invalid."
    )
    reject_truncated: bool = Field(
        False, description="Treat outputs that hit max_tokens (finish_reason 'length') as invalid."
    )

    def sampling(self, settings: SamplingSettings, **run_values: Any) -> Sampling:
        """The engine Sampling for ``settings`` that stops at these rules' cut markers."""
        return settings.to_sampling(stop=list(dict.fromkeys(self.cut_markers)), **run_values)


def clean_output(text: str, rules: OutputRules, finish_reason: str | None = None) -> tuple[str | None, str]:
    """Apply the rules: returns (clean text, "") or (None, reason)."""
    cut = len(text)
    for marker in rules.cut_markers:
        pos = text.find(marker)
        if pos != -1:
            cut = min(cut, pos)
    out = text[:cut].strip()
    if rules.reject_truncated and finish_reason == "length" and cut == len(text):
        return None, "truncated"
    if len(out) < rules.min_chars:
        return None, "empty" if not out else "too_short"
    if rules.max_chars is not None and len(out) > rules.max_chars:
        return None, "too_long"
    return out, ""


def with_template_stops(rules: OutputRules, template: Any) -> OutputRules:
    """The rules plus the template's own cut markers (``metadata.stop``), for formats it defines."""
    extra = template.metadata.get("stop") or []
    if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
        raise ConfigError(f"template '{template.name}': metadata.stop must be a list of strings")
    return rules.model_copy(update={"cut_markers": list(dict.fromkeys([*rules.cut_markers, *extra]))})
