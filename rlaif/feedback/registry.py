"""What each feedback source declares, so the pipeline never branches on a source's name.

A source declares itself with :func:`feedback_source` (built-ins and plug-ins alike)::

    @feedback_source(config=MyConfig, judge="score", writes=("pairs", "judgments", "dropped"))
    def my_source(prompts, engine, options, context, *, judge_engine=None) -> FeedbackResult: ...

and the pipeline asks :func:`describe` (a built-in name or ``"package.module:function"``) for a
:class:`SourceSpec`: its config model, its judge slot (``"score"``, ``"compare"`` or None; the run's
``judge:`` block fills it, given to the source as ``context.judge``), whether it needs the sandbox or
text scoring (prompt log-probabilities), and the record lists it writes. A plug-in without the
decorator is described from the attributes older plug-ins set (``config_model``, ``uses_sandbox``).

Guarantees: :func:`describe` of a built-in name and of its dotted path give the same spec; an unknown
name or a broken reference is one :class:`~rlaif.errors.ConfigError` line listing the built-ins.
Non-guarantee: whether a source really writes what it declares is checked only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from rlaif.errors import ConfigError
from rlaif.plugins import import_object

Slot = Literal["score", "compare"]
NEEDS = ("sandbox", "text_scoring")
RECORD_LISTS = ("pairs", "judgments", "dropped", "sft", "new_prompts", "executions")

BUILTINS = {
    "rlcd": "rlaif.feedback.rlcd:rlcd",
    "sl_cai": "rlaif.feedback.sl_cai:sl_cai",
    "rl_cai": "rlaif.feedback.rl_cai:rl_cai",
    "self_rewarding": "rlaif.feedback.self_rewarding:self_rewarding",
    "rlcf": "rlaif.feedback.rlcf:rlcf",
    "instruction_contrast": "rlaif.feedback.instruction_contrast:instruction_contrast",
}


@dataclass(frozen=True)
class SourceSpec:
    """A source's declaration. ``judge_kinds`` narrows the slot where the source needs one kind (RL-CAI
    conditions its judge on principles); ``default_judge`` is used when the run sets no ``judge:``."""

    name: str
    run: Callable[..., Any]
    config_model: type | None = None
    judge: Slot | None = None
    judge_kinds: tuple[str, ...] | None = None
    default_judge: str | None = None
    needs: frozenset[str] = field(default_factory=frozenset)
    writes: tuple[str, ...] = ("pairs", "judgments", "dropped")

    @property
    def needs_sandbox(self) -> bool:
        return "sandbox" in self.needs

    def uses_judge(self, options: Any) -> bool:
        """Whether a call with these (validated) options asks a judge: the slot is declared and the
        config does not turn it off (``uses_judge`` on the config, e.g. RLCD without ``rescore``)."""
        return self.judge is not None and bool(getattr(options, "uses_judge", True))

    def judge_for(self, context: Any) -> Any:
        """The judge spec a call uses: the run's (``context.judge``) or the declared default, checked
        against the slot and kinds this source declared (a direct call is checked like a run)."""
        from rlaif.judges.spec import judge_spec

        where = f"{self.name} judge"
        spec = judge_spec(getattr(context, "judge", None) or self.default_judge, where=where)
        if spec.slot != self.judge or (self.judge_kinds and spec.kind not in self.judge_kinds):
            needs = " or ".join(self.judge_kinds) if self.judge_kinds else f"{self.judge} judge"
            raise ConfigError(
                f"{where}: '{spec.template}' is a {spec.kind} judge ({spec.slot}); {self.name} needs a {needs}"
            )
        return spec

    def scores_text(self, options: Any) -> bool:
        """Whether the policy engine must score given text (declared, or ``scores_text`` on the config)."""
        return "text_scoring" in self.needs or bool(getattr(options, "scores_text", False))


def feedback_source(
    *,
    config: type | None,
    judge: Slot | None = None,
    judge_kinds: tuple[str, ...] | None = None,
    default_judge: str | None = None,
    needs: tuple[str, ...] = (),
    writes: tuple[str, ...] = ("pairs", "judgments", "dropped"),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a source (the decorated function is returned unchanged, with ``source_spec`` set)."""
    unknown = (set(needs) - set(NEEDS)) | (set(writes) - set(RECORD_LISTS))
    if unknown or judge not in (None, "score", "compare"):
        raise ConfigError(f"feedback_source: unknown declaration(s) {sorted(unknown) or judge}")

    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.source_spec = SourceSpec(  # type: ignore[attr-defined]
            name=fn.__name__, run=fn, config_model=config, judge=judge, judge_kinds=judge_kinds,
            default_judge=default_judge, needs=frozenset(needs), writes=tuple(writes),
        )  # fmt: skip
        fn.config_model = config  # type: ignore[attr-defined]  # what plug-in authors read
        return fn

    return declare


def describe(name: str) -> SourceSpec:
    """The declaration of a built-in source (by name) or of a plug-in (``package.module:function``)."""
    fn = resolve(name)
    spec = getattr(fn, "source_spec", None)
    if isinstance(spec, SourceSpec):
        return spec
    needs = frozenset({"sandbox"} if getattr(fn, "uses_sandbox", False) else ())
    writes = ("pairs", "judgments", "dropped", "executions") if needs else ("pairs", "judgments", "dropped")
    return SourceSpec(
        name=name, run=fn, config_model=getattr(fn, "config_model", None), needs=needs, writes=writes
    )


def resolve(name: str) -> Callable[..., Any]:
    """The source function for a built-in name or a ``package.module:function`` reference."""
    if name in BUILTINS:
        return import_object(BUILTINS[name], "feedback source")
    if ":" not in name:
        raise ConfigError(
            f"unknown feedback source '{name}' (built-in: {', '.join(sorted(BUILTINS))}; "
            "or 'package.module:function')"
        )
    return import_object(name, "feedback source")
