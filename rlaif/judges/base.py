"""Plumbing shared by the judges: templates, request rendering, context checks, judgment records.

Requests are sent through :mod:`rlaif.generation` (context screening, per-request seeds, retries);
an over-long judge prompt becomes an invalid judgment with the reason, never a failed batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rlaif.errors import TemplateError
from rlaif.prompts import Template, load_template
from rlaif.records import Judgment, Message, as_conversation, stable_hash

TRANSCRIPT_TEMPLATE = "conversation_transcript"


def resolve_template(template: str | os.PathLike | Template) -> Template:
    return template if isinstance(template, Template) else load_template(template)


def require_variables(template: Template, names: Sequence[str], what: str) -> None:
    """A TemplateError naming the file unless ``template`` declares every one of ``names``: a judge
    renders its template with those variables, and a template that ignores one (the response, say)
    would judge without seeing it."""
    missing = set(names) - set(template.variables)
    if missing:
        raise TemplateError(
            f"template '{template.name}' ({template.path}): a {what} template must declare the variables "
            f"{', '.join(names)} (missing: {', '.join(sorted(missing))})"
        )


@lru_cache(maxsize=4)
def _transcript_template(name: str) -> Template:
    return load_template(name)


def conversation_text(conversation: Sequence[Message] | str) -> str:
    """The conversation as judges show it (see ``prompts/conversation_transcript.j2``)."""
    conv = as_conversation(conversation if isinstance(conversation, str) else list(conversation))
    tpl = _transcript_template(TRANSCRIPT_TEMPLATE)
    return tpl.render(conversation=[m.model_dump() for m in conv]).strip()


def judge_items(items: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The items with each conversation as :class:`Message` records: a judge takes what
    ``engine.generate`` takes (a plain string, message dicts or messages), so a caller can pass its
    prompts to both unchanged. A malformed message is a ``ValidationError`` naming the field."""
    return [(as_conversation(conv if isinstance(conv, str) else list(conv)), *rest) for conv, *rest in items]


@dataclass
class Request:
    """One rendered judge prompt and the identity it is recorded under."""

    text: str
    prompt_hash: str
    payload: str | list[Message]


def render_request(template: Template, **variables: Any) -> Request:
    text = template.render(**variables)
    payload: str | list[Message] = text if template.format == "text" else [Message(role="user", content=text)]
    return Request(text=text, prompt_hash=stable_hash(text), payload=payload)


def render_response_requests(
    template: Template, items: Sequence[tuple[Sequence[Message], str]]
) -> list[Request]:
    """One request per (conversation, response), with the variables every response judge offers."""
    return [
        render_request(
            template,
            prompt=conversation_text(conv),
            response=response,
            conversation=[m.model_dump() for m in conv],
        )
        for conv, response in items
    ]


# -- judgments -------------------------------------------------------------------------------------
def make_judgment(
    *,
    kind: str,
    engine: Any,
    adapter: str | None,
    template: Template,
    request: Request,
    key: Sequence[str],
    raw_output: str,
    parsed: Any | None = None,
    invalid_reason: str | None = None,
    orders: list[str] | None = None,
    principle: str | None = None,
    subject_ids: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Judgment:
    """A Judgment with full provenance; ``key`` (item id, order, sample, attempt) makes the id unique."""
    ok = parsed is not None and parsed.ok and invalid_reason is None
    meta = {"template_path": str(template.path)}
    if adapter:
        meta["adapter"] = adapter
    if parsed is not None and parsed.details:
        meta["parse"] = parsed.details
    if parsed is not None and parsed.parsed is not None:
        meta["parsed"] = parsed.parsed
    meta.update(metadata or {})
    return Judgment(
        id=stable_hash(kind, template.content_hash, request.prompt_hash, *key),
        kind=kind,  # type: ignore[arg-type]
        judge_model=getattr(engine, "model_name", type(engine).__name__),
        template=template.name,
        template_hash=template.content_hash,
        prompt_hash=request.prompt_hash,
        raw_output=raw_output,
        status="ok" if ok else "invalid",
        invalid_reason=None if ok else (invalid_reason or (parsed.reason if parsed else "no output")),
        score=parsed.score if ok else None,
        choice=parsed.choice if ok else None,
        probabilities=parsed.probabilities if ok else None,
        orders=orders or [],
        principle=principle,
        subject_ids=subject_ids or [],
        metadata=meta,
    )


def judgment_by(judge: Any, *, template: Template | None = None, **fields: Any) -> Judgment:
    """:func:`make_judgment` stamped with ``judge``'s own provenance, as every engine-backed judge
    records it: its ``record_kind``, ``engine``, ``adapter`` and ``template`` (``template`` given: a
    judge whose prompt is not its ``.template``), and the judged item's id (``key[0]``) as subject."""
    return make_judgment(
        kind=judge.record_kind,
        engine=judge.engine,
        adapter=judge.adapter,
        template=template or judge.template,
        subject_ids=[fields["key"][0]],
        **fields,
    )


def item_ids(ids: Sequence[str] | None, n: int, prefix: str, content_keys: Sequence[str]) -> list[str]:
    """Caller's ids, or ids from the item's content and position (unique within one call)."""
    if ids is None:
        return [stable_hash(prefix, str(i), k) for i, k in enumerate(content_keys)]
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} ids for {n} items")
    return [str(x) for x in ids]


# -- the two protocols -----------------------------------------------------------------------------
class ScoreJudge:
    """A judge in the ``score`` slot: ``score(items, ids) -> list[PointwiseResult]``; also a TRL-style
    reward function ``judge(prompts, completions, **kw) -> list[float | None]`` (None: could not judge),
    so any score judge can reward a GRPO/RLOO/PPO round."""

    slot = "score"
    spec_kind = ""  # the JudgeSpec kind that builds this class (see rlaif.judges.loading.from_template)

    def score(self, items: Sequence[tuple[Sequence[Message], str]], ids: Sequence[str] | None = None) -> list:
        raise NotImplementedError

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
        items = [(as_conversation(p), _text(c)) for p, c in zip(prompts, completions, strict=True)]
        return [r.mean_score for r in self.score(items)]


class CompareJudge:
    """A judge in the ``compare`` slot: ``compare(items, ids) -> list[PairwiseResult]``."""

    slot = "compare"
    spec_kind = ""


def _text(completion: Any) -> str:
    """A completion as TRL passes it: a string, or a conversational list ending with the reply."""
    if isinstance(completion, str):
        return completion
    last = completion[-1]
    return last.content if isinstance(last, Message) else str(last["content"])
