"""The config reference: every key of a run config with its type, default and meaning, read from the
pydantic models that validate it (``rlaif docs config`` writes ``docs/config.md``; ``rlaif validate
--explain KEY`` prints one key).

Why generated: the models are the one definition of what a run accepts, so a reference written by
hand would drift; a test regenerates the file and compares.

Guarantees: every field of :class:`rlaif.config.RunConfig` and of every option block model (each
built-in feedback source, each judge kind, the pair filters, DPO, SFT, PPO/GRPO/RLOO) is listed, nested
blocks expanded as ``a.b.c``; keys a run sets itself (the policy a trainer starts from, its input
files, a source's seed/round/adapter) are named as such instead of listed as settable. Output is
deterministic (model field order). Non-guarantee: a plug-in source's options are not listed (its
model is only known once a run names it; ``--explain`` with a run config does resolve it).
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from rlaif.config import RunConfig
from rlaif.errors import ConfigError, suggest_key

GENERATED_BY = "rlaif docs config"
FINAL_KINDS = ("ppo", "grpo", "rloo")


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    meaning: str


@dataclass(frozen=True)
class Section:
    """One block of the reference: the YAML key it sits at (``prefix``) and the model validating it."""

    title: str
    prefix: str
    model: type[BaseModel]
    note: str = ""
    run_sets: tuple[str, ...] = ()
    run_defaults: tuple[tuple[str, str], ...] = ()


# -- reading a model ----------------------------------------------------------------------------------


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    return next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)


def type_name(annotation: Any) -> str:
    """A type as a user writes it in YAML terms (``int | null``, ``'a' | 'b'``, ``list[str]``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is Any:
        return "any"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(block defaults)"
    return json.dumps(value, default=str)


def _meaning(field: Any, nested: type[BaseModel] | None) -> str:
    text = field.description or (nested.__doc__ or "" if nested else "")
    return " ".join(text.split("\n\n")[0].split())


def model_rows(
    model: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = (), defaults: dict | None = None
) -> list[Row]:
    """Every field of ``model`` (nested models expanded), keys prefixed with ``prefix``; ``defaults``:
    the default shown for a key the run fills in when the user does not."""
    rows, defaults = [], defaults or {}
    for name, field in model.model_fields.items():
        if name in skip or field.exclude:
            continue
        nested = _nested_model(field.annotation)
        default = defaults.get(name) or _default(field)
        rows.append(Row(prefix + name, type_name(field.annotation), default, _meaning(field, nested)))
        if nested is not None:
            rows += model_rows(nested, f"{prefix}{name}.", defaults=_block_defaults(field))
    return rows


def _block_defaults(field: Any) -> dict[str, str]:
    """What a nested block's keys default to when the block itself is left out: a parent may build
    its block with other values than the block's class (repair sampling at temperature 0.8, not 1.0)."""
    block = None if field.is_required() else field.get_default(call_default_factory=True)
    if not isinstance(block, BaseModel):
        return {}
    values = {name: getattr(block, name) for name in type(block).model_fields}
    return {k: json.dumps(v, default=str) for k, v in values.items() if not isinstance(v, BaseModel)}


# -- the sections ---------------------------------------------------------------------------------------


def _source_sections(prefix: str, sources: list[str] | None = None) -> list[Section]:
    from rlaif.feedback.registry import BUILTINS, describe
    from rlaif.pipeline.resolve import RUN_DECIDES

    out = []
    for name in sources or sorted(BUILTINS):
        model = describe(name).config_model
        if model is not None:
            sets = tuple(k for k in RUN_DECIDES if k in model.model_fields)
            out.append(Section(f"`{prefix.rstrip('.')}` for `source: {name}`", prefix, model, run_sets=sets))
    return out


def _judge_sections(kinds: list[str] | None = None) -> list[Section]:
    from rlaif.judges.spec import _MODELS

    note = "`judge.template` and `judge.kind` are set next to `judge.options`, not in it."
    return [
        Section(f"`judge.options` for `kind: {kind}`", "judge.options.", model, note, ("kind", "template"))
        for kind, model in _MODELS.items()
        if kinds is None or kind in kinds
    ]


def _trainer_sections(finals: tuple[str, ...] = FINAL_KINDS) -> list[Section]:
    from rlaif.pairs import PairFilterConfig
    from rlaif.pipeline.stage_kinds import FINAL_TRAINERS
    from rlaif.train.configs import DPOConfig, DPOOptions
    from rlaif.train.sft import SFTConfig, SFTOptions

    run = (("output_dir", "(the stage's folder in the run)"), ("seed", "(from the run's seed)"))
    trainers = [
        ("`dpo`: each DPO round", "dpo.", DPOOptions, DPOConfig, ()),
        ("`sft.options`: SFT before round 1", "sft.options.", SFTOptions, SFTConfig, ()),
    ]
    trainers += [  # a run's final.reward decides the trainer's reward keys
        (f"`final.options` for `final.kind: {kind}`", "final.options.", t.options, t.config, t.reward_keys)
        for kind, t in ((kind, FINAL_TRAINERS[kind]) for kind in finals)
    ]
    return [
        Section("`pairs.options`: the pair filters", "pairs.options.", PairFilterConfig),
        *(
            Section(title, prefix, options, run_sets=_run_inputs(options, config) + also, run_defaults=run)
            for title, prefix, options, config, also in trainers
        ),
    ]


def _run_inputs(options: type[BaseModel], config: type[BaseModel]) -> tuple[str, ...]:
    """What a trainer's config adds to the user's options: the inputs the run gives each stage."""
    return tuple(k for k in config.model_fields if k not in options.model_fields)


def all_sections() -> list[Section]:
    """The whole reference, in the order of a run config."""
    run = Section("Run config (top level)", "", RunConfig)
    feedback = _source_sections("feedback.options.")
    return [run, *_judge_sections(), *feedback, *_trainer_sections()]


def run_sections(cfg: RunConfig) -> list[Section]:
    """The sections that apply to one run: its source, its judge kind, its final trainer."""
    sources = [cfg.feedback.source]
    sections = [Section("Run config", "", RunConfig), *_source_sections("feedback.options.", sources)]
    if cfg.sft is not None:
        sections += _source_sections("sft.feedback.options.", [cfg.sft.feedback.source])
    sections += _judge_sections(_run_judge_kinds(cfg))
    finals = (cfg.final.kind,) if cfg.final.kind != "none" else ()
    return sections + _trainer_sections(finals)


def _run_judge_kinds(cfg: RunConfig) -> list[str] | None:
    """The judge kind the run uses (None: every kind, when it cannot be told without a model)."""
    from rlaif.errors import RlaifError
    from rlaif.feedback.registry import describe
    from rlaif.judges.spec import judge_spec

    try:
        spec = cfg.judge.spec or describe(cfg.feedback.source).default_judge
        return [judge_spec(spec).kind] if spec else None
    except RlaifError:
        return None


# -- rendering and lookup -------------------------------------------------------------------------------


def section_rows(section: Section) -> list[Row]:
    return model_rows(section.model, section.prefix, section.run_sets, dict(section.run_defaults))


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def render_markdown(sections: list[Section] | None = None) -> str:
    sections = sections if sections is not None else all_sections()
    lines = [
        "# Config reference",
        "",
        f"<!-- generated by `{GENERATED_BY}` from the pydantic models; do not edit by hand -->",
        "",
        "Every key of a run config (`rlaif run FILE`), with its type, default and meaning. Nested keys",
        "are written with dots, exactly as a command-line override takes them: `rlaif run FILE",
        "dpo.beta=0.2 prompts.limit=64`. `rlaif validate FILE --explain KEY` prints one key for a run.",
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", ""]
        extra = [section.note] if section.note else []
        if section.run_sets:
            shown = ", ".join(f"`{k}`" for k in section.run_sets)
            extra.append(f"Not in this block (the run or the keys next to it set them): {shown}.")
        lines += [*extra, ""] if extra else []
        lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        lines += [
            f"| `{r.key}` | {_cell(r.type)} | `{_cell(r.default)}` | {_cell(r.meaning)} |"
            for r in section_rows(section)
        ]
        lines.append("")
    return "\n".join(lines)


def _found(key: str, sections: list[Section]) -> list[tuple[Section, Row]]:
    return [(s, r) for s in sections for r in section_rows(s) if r.key == key]


def _title(section: Section) -> str:
    return section.title.replace("`", "")


def explain(key: str, sections: list[Section], file: str = "config", others: list[Section] = ()) -> list[str]:
    """What ``key`` is (one paragraph per section holding it); an unknown key is a ConfigError naming
    the key the user probably meant, as a validation error does, and the blocks of ``others`` (e.g.
    other feedback sources) that do take it."""
    found = _found(key, sections)
    if found:
        return [f"{r.key} ({_title(s)})\n  type: {r.type}\n  default: {r.default}\n  {r.meaning}"
                for s, r in found]  # fmt: skip
    hint = _suggest(key, sections)
    message = f"{file}: unknown key '{key}'" + (f" (did you mean '{hint}'?)" if hint else "")
    elsewhere = sorted({_title(s) for s, _ in _found(key, others)})
    if elsewhere:
        message += f"; this run does not take it, it belongs to: {'; '.join(elsewhere)}"
    raise ConfigError(message)


def _suggest(key: str, sections: list[Section]) -> str | None:
    """The existing key hint (:func:`rlaif.errors.suggest_key`) in the deepest block ``key`` sits in."""
    for section in sorted(sections, key=lambda s: -len(s.prefix)):
        if key.startswith(section.prefix):
            loc = tuple(key[len(section.prefix) :].split("."))
            hint = suggest_key(section.model, loc)
            if hint:
                return section.prefix + hint
    return None
