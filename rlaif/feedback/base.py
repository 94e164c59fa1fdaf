"""What every feedback source takes and returns, and the helpers they share.

A feedback source is a plain function::

    def my_source(
        prompts: list[PromptRecord],
        engine: Engine,
        config: MyConfig | dict | None = None,
        *,
        judge_engine: Engine | None = None,
    ) -> FeedbackResult: ...

``engine`` serves the policy (the model whose outputs become pairs); ``judge_engine`` serves the AI
labeller where the source has one (None: the policy engine judges, as in Self-Rewarding). ``config`` is the
source's pydantic model (``extra="forbid"``) or a plain dict validated into it.

Guarantees every built-in source keeps (and user sources should keep):
- accounting: every input prompt either yields exactly one pair or is counted under one drop reason, so
  ``stats.pairs_out + sum(stats.drops.values()) == stats.prompts_in``; each drop is also listed with the
  prompt id in ``FeedbackResult.dropped``;
- batching: each stage sends all its requests in one ``engine.generate`` call (retries: one call per
  retry round, holding only the requests still invalid);
- determinism: each request is sampled with its own seed, derived from ``config.seed``, the stage, the
  request's key (the prompt's position, plus the side for RLCD) and the retry number; per-prompt draws
  (affix, principle) derive from ``config.seed`` and the prompt's position. So the same inputs, seed and
  engine give the same pairs, and a prompt's samples do not depend on its batch neighbours;
- prompts longer than the model's context (where the engine can count tokens) are dropped as
  ``prompt_too_long`` instead of failing the whole batch;
- provenance: each pair's ``metadata`` records the model, adapter, seeds, templates (name + content
  hash) and what was drawn at random for it; ``judgment_ids`` point into ``FeedbackResult.judgments``.

Non-guarantee: determinism holds for one engine build on one machine (kernels differ across devices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlaif.engines.base import Engine, PromptInput, Sampling
from rlaif.errors import ConfigError, describe_validation_error
from rlaif.files import atomic_write_text
from rlaif.pairs import PairStats
from rlaif.records import (
    Completion,
    Judgment,
    Message,
    PreferencePair,
    PromptRecord,
    stable_hash,
    write_jsonl,
)


class SFTRecord(BaseModel):
    """A supervised example (prompt -> completion), e.g. an SL-CAI final revision."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: list[Message]
    completion: str
    source: str
    round: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)


class DroppedPrompt(BaseModel):
    """Why one input prompt produced no pair (kept so that no drop is silent)."""

    model_config = ConfigDict(extra="forbid")

    prompt_id: str
    reason: str
    detail: str = ""


FeedbackStats = PairStats
"""Per-run counts (see :class:`rlaif.pairs.PairStats`)."""


@dataclass
class FeedbackResult:
    """Everything a source produced: pairs plus the records needed to audit or reuse them."""

    pairs: list[PreferencePair]
    stats: FeedbackStats
    judgments: list[Judgment] = field(default_factory=list)
    dropped: list[DroppedPrompt] = field(default_factory=list)
    sft_records: list[SFTRecord] = field(default_factory=list)
    new_prompts: list[PromptRecord] = field(default_factory=list)

    def drop(self, prompt_id: str, reason: str, detail: str = "") -> None:
        """Count a prompt that yields no pair, under ``reason``."""
        self.stats.add_drop(reason)
        self.dropped.append(DroppedPrompt(prompt_id=prompt_id, reason=reason, detail=detail))

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write pairs.jsonl, judgments.jsonl, dropped.jsonl, stats.json (+ sft.jsonl, new_prompts.jsonl
        when present) atomically; returns the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "pairs": out / "pairs.jsonl",
            "judgments": out / "judgments.jsonl",
            "dropped": out / "dropped.jsonl",
        }
        write_jsonl(paths["pairs"], self.pairs)
        write_jsonl(paths["judgments"], self.judgments)
        write_jsonl(paths["dropped"], self.dropped)
        if self.sft_records:
            paths["sft"] = out / "sft.jsonl"
            write_jsonl(paths["sft"], self.sft_records)
        if self.new_prompts:
            paths["new_prompts"] = out / "new_prompts.jsonl"
            write_jsonl(paths["new_prompts"], self.new_prompts)
        paths["stats"] = out / "stats.json"
        atomic_write_text(paths["stats"], self.stats.model_dump_json(indent=2) + "\n")
        return paths


class FeedbackSource(Protocol):
    """The signature of a feedback source (built-in or a user's ``package.module:function``)."""

    def __call__(
        self,
        prompts: list[PromptRecord],
        engine: Engine,
        config: Any = None,
        *,
        judge_engine: Engine | None = None,
    ) -> FeedbackResult: ...


C = TypeVar("C", bound=BaseModel)


def coerce_config(config: C | dict | None, model: type[C], where: str) -> C:
    """Validate a dict (or None: defaults) into the source's config model, naming bad fields."""
    if isinstance(config, model):
        return config
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(
            f"{where}: config must be a mapping or {model.__name__}, got {type(config).__name__}"
        )
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        raise ConfigError(f"{where} config: {describe_validation_error(exc, root='(config)')}") from None


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed that depends only on the global seed and the named stage/attempt/index."""
    return int(stable_hash(str(seed), *(str(p) for p in parts)), 16) % (2**31 - 1)


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


@dataclass
class Sampled:
    """One request's accepted text (or None) and how it was obtained."""

    text: str | None
    seed: int | None
    attempts: int
    reason: str = ""
    raw: str = ""


def generate_each(
    engine: Engine, requests: Sequence[PromptInput], samplings: Sequence[Sampling], adapter: str | None
) -> list[list[Completion]]:
    """One ``generate`` call with per-request settings (one shared Sampling when they are all equal).

    Why per request: each request's seed is derived from the global seed and the request's own key, so
    a prompt's samples do not depend on its batch neighbours, and two nearly identical prompts (RLCD's
    positive/negative) get independent samples instead of one shared random stream.
    """
    if not requests:
        return []
    first = samplings[0]
    if all(s == first for s in samplings):
        return engine.generate(list(requests), first, adapter=adapter)
    return engine.generate(list(requests), list(samplings), adapter=adapter)  # type: ignore[arg-type]


def context_overflow(engine: Engine, requests: Sequence[PromptInput]) -> dict[int, str]:
    """Requests longer than the model's context (where the engine can count tokens): index -> detail.

    Why: vLLM rejects the whole batch when one prompt is too long; such a prompt is dropped and counted
    instead (retrying cannot help). Engines that cannot count tokens get every request as is.
    """
    from rlaif.judges.base import token_counter

    counter, max_len = token_counter(engine)
    if counter is None or max_len is None or not requests:
        return {}
    return {
        i: f"prompt is {n} tokens; the model's context is {max_len}"
        for i, n in enumerate(counter(list(requests)))
        if n >= max_len
    }


def sample_n_with_retries(
    engine: Engine,
    requests: Sequence[PromptInput],
    sampling: Sampling,
    rules: OutputRules,
    *,
    n: int,
    max_retries: int,
    seed: int,
    stage: str,
    keys: Sequence[str] | None = None,
    adapter: str | None = None,
    stats: FeedbackStats | None = None,
) -> list[list[Sampled]]:
    """Sample ``n`` valid texts per request.

    Request ``i`` is sampled with seed ``derive_seed(seed, stage, keys[i], attempt)`` (keys default to
    the request's position). Each attempt is one ``generate`` call holding only the requests that still
    miss valid samples; invalid slots are filled in order from the new samples. After ``max_retries``
    extra attempts an unfilled slot keeps ``text=None`` and the reason of its last failure; a request
    longer than the context is never sent (reason ``prompt_too_long``).
    """
    keys = [str(i) for i in range(len(requests))] if keys is None else [str(k) for k in keys]
    if len(keys) != len(requests):
        raise ValueError(f"{len(keys)} keys for {len(requests)} requests")
    results = [[Sampled(text=None, seed=None, attempts=0) for _ in range(n)] for _ in requests]
    too_long = context_overflow(engine, requests)
    for i, detail in too_long.items():
        results[i] = [Sampled(text=None, seed=None, attempts=0, reason="prompt_too_long", raw=detail)] * n
    if too_long and stats is not None:
        stats.count(f"{stage}_prompt_too_long", len(too_long))
    pending = [i for i in range(len(requests)) if i not in too_long]
    for attempt in range(max_retries + 1):
        if not pending:
            break
        seeds = {i: derive_seed(seed, stage, keys[i], attempt) for i in pending}
        params = [sampling.model_copy(update={"n": n, "seed": seeds[i]}) for i in pending]
        outs = generate_each(engine, [requests[i] for i in pending], params, adapter)
        if stats is not None:
            stats.count(f"{stage}_generate_calls")
            if attempt:
                stats.count(f"{stage}_retried_requests", len(pending))
        still = []
        for i, completions in zip(pending, outs, strict=True):
            slots = [k for k, s in enumerate(results[i]) if s.text is None]
            for comp in completions:
                if not slots:
                    break
                text, reason = clean_output(comp.text, rules, comp.finish_reason)
                results[i][slots[0]] = Sampled(
                    text=text, seed=seeds[i], attempts=attempt + 1, reason=reason, raw=comp.text
                )
                if text is None:
                    if stats is not None:
                        stats.count(f"{stage}_invalid_{reason}")
                else:
                    slots.pop(0)
            if slots:
                still.append(i)
        pending = still
    return results


def sample_with_retries(
    engine: Engine,
    requests: Sequence[PromptInput],
    sampling: Sampling,
    rules: OutputRules,
    *,
    max_retries: int,
    seed: int,
    stage: str,
    keys: Sequence[str] | None = None,
    adapter: str | None = None,
    stats: FeedbackStats | None = None,
) -> list[Sampled]:
    """One valid text per request (see :func:`sample_n_with_retries`)."""
    out = sample_n_with_retries(
        engine, requests, sampling, rules, n=1, max_retries=max_retries, seed=seed, stage=stage,
        keys=keys, adapter=adapter, stats=stats,
    )  # fmt: skip
    return [slots[0] for slots in out]


def template_ref(template: Any) -> dict[str, str]:
    """Name + content hash of a loaded template, for provenance."""
    return {"name": template.name, "hash": template.content_hash}


def pair_id(source: str, round_: int, prompt_id: str, chosen: str, rejected: str) -> str:
    return f"{source}-{stable_hash(source, str(round_), prompt_id, chosen, rejected)}"


def finish(result: FeedbackResult, pairs: list[PreferencePair], filters: Any) -> FeedbackResult:
    """Apply the shared pair filters (drops counted by reason), then fill pairs_out and length stats."""
    from rlaif.pairs import filter_pairs, length_summary

    kept, dropped = filter_pairs(pairs, filters)
    for pair, reason in dropped:
        result.drop(pair.metadata.get("prompt_id", pair.id), reason, detail=f"pair {pair.id}")
    result.pairs = kept
    result.stats.pairs_out = len(kept)
    result.stats.length = length_summary(kept)
    return result


def resolve_resource(spec: str) -> tuple[Path, str]:
    """A prompt data file (by name in prompts/ or by path) and its content hash."""
    from rlaif.prompts import find_data_file

    path = find_data_file(spec)
    return path, stable_hash(path.read_bytes())


def require_str(entry: Any, key: str, where: str) -> str:
    """A required, non-empty string field of a YAML entry."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    value = entry.get(key)
    if value is None:
        raise ConfigError(f"{where}: missing field '{key}'")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: field '{key}' must be a non-empty string")
    return value.strip()


def judge_kwargs(options: dict[str, Any], reserved: Sequence[str], where: str) -> dict[str, Any]:
    """Extra judge constructor arguments from a config mapping (``sampling`` may be a plain mapping).

    Keys the source sets itself (``reserved``) are refused, so that a value is never given twice."""
    clash = sorted(set(options) & set(reserved))
    if clash:
        raise ConfigError(f"{where}: judge_options may not set {clash}; use the source's own fields")
    out = dict(options)
    if isinstance(out.get("sampling"), dict):
        try:
            out["sampling"] = Sampling.model_validate(out["sampling"])
        except ValidationError as exc:
            problem = describe_validation_error(exc, limit=1, prefix="judge_options.sampling.")
            raise ConfigError(f"{where}: {problem}") from None
    return out


class PerRequestSeeds:
    """An engine view that gives each request of a seeded call its own seed.

    Why: judges send one Sampling (one seed) for a whole call, so every judged item would share one
    random stream and its sampled judgments would be correlated across candidates (with a weak model,
    all candidates get the same verdicts and every pair is a tie). Here each request's seed is derived
    from the call's seed and the request's content, so judgments of different items are independent
    draws while the run stays deterministic. Unseeded calls pass through unchanged; everything else
    (model_name, tokenizer, ...) is the wrapped engine's.
    """

    def __init__(self, engine: Engine):
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def generate(
        self, prompts: Sequence[PromptInput], sampling: Sampling, adapter: str | None = None
    ) -> list[list[Completion]]:
        if not isinstance(sampling, Sampling) or sampling.seed is None or len(prompts) <= 1:
            return self._engine.generate(prompts, sampling, adapter=adapter)
        per_request = [
            sampling.model_copy(update={"seed": derive_seed(sampling.seed, _content_key(p))}) for p in prompts
        ]
        return generate_each(self._engine, prompts, per_request, adapter)


def _content_key(prompt: PromptInput) -> str:
    if isinstance(prompt, str):
        return stable_hash(prompt)
    return stable_hash(*(f"{m.role}\x00{m.content}" if isinstance(m, Message) else str(m) for m in prompt))
