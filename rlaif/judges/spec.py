"""One judge spec: which kind of judge, its template, its typed options, decided in one place.

A judge does one of two things (its *slot*): ``score`` one response (``judge.score(items)`` ->
:class:`~rlaif.judges.pointwise.PointwiseResult`) or ``compare`` two (``judge.compare(items)`` ->
:class:`~rlaif.judges.pairwise.PairwiseResult`). A :data:`JudgeSpec` is a pydantic union on ``kind``:

| kind                | slot    | judge                                   | template                         |
| ------------------- | ------- | --------------------------------------- | -------------------------------- |
| ``rubric``          | score   | :class:`~.pointwise.PointwiseJudge`     | score or json parser             |
| ``label_probability`` | score | :class:`~.yesno.LabelProbabilityJudge`  | pointwise, choice parser         |
| ``likelihood``      | score   | :class:`~.likelihood.ContrastiveLikelihoodJudge` | no parser, ``descriptor`` |
| ``pairwise``        | compare | :class:`~.pairwise.PairwiseJudge`       | ``response_a``, ``response_b``   |
| ``principle``       | compare | :class:`~.principle.PrincipleJudge`     | + ``principle``                  |
| ``python``          | either  | :class:`~.custom.CallableJudge`         | ``package.module:function``      |
| ``length``          | score   | :class:`~.length.LengthJudge`           | none (a baseline)                |

:func:`judge_spec` turns what a user writes (a name, a path, ``pkg.mod:fn``, or a mapping with
``template``/``kind`` and options) into a spec: the kind comes from the mapping, else from the template
(:func:`template_kind`, the only place a kind is inferred); the template's front matter
``metadata.judge_options`` supplies defaults, validated by the same model as the user's options.
:func:`build_judge` makes the judge, adding what the run decides (seed, adapter, a source's
principles) where the kind takes it.

To add a judge kind: a module with the judge class (``slot``, ``score`` or ``compare``), a spec model
here added to :data:`JudgeSpec`, and a test. Guarantees: an unknown option, a wrong kind for a template
or a template of the wrong shape is a one-line :class:`~rlaif.errors.ConfigError` naming it.
Non-guarantee: a Python judge's values are checked only when it runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rlaif.engines.base import SamplingSettings
from rlaif.errors import ConfigError, RlaifError, TemplateError, describe_validation_error
from rlaif.plugins import import_object
from rlaif.prompts import (
    PACKAGED_PROMPTS_DIR,
    REPO_PROMPTS_DIR,
    ChoiceParserSpec,
    ScoreParserSpec,
    Template,
    load_template,
)

SCORE, COMPARE = "score", "compare"
CALLABLE = r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*"
ALIASES = {
    "pointwise": "self_rewarding_rubric",
    "rubric": "self_rewarding_rubric",
    "self_rewarding": "self_rewarding_rubric",
    "principle": "cai_principle_choice",
    "cai": "cai_principle_choice",
}


class _Spec(BaseModel):
    """What every kind has: its name and its template (a prompts/ name, a path, or pkg.mod:fn)."""

    model_config = ConfigDict(extra="forbid")

    slot: ClassVar[str] = SCORE
    judge_class: ClassVar[str] = ""  # "module:Class", imported when built (keeps this module light)
    run_values: ClassVar[tuple[str, ...]] = ("adapter",)  # what the run may pass to the constructor

    template: str = Field(
        ..., description="Built-in template name, template file, or package.module:function."
    )

    @property
    def scores_text(self) -> bool:
        """Whether this judge needs an engine that scores given text (prompt log-probabilities: the
        in-process vLLM engine without LoRA), so a run can refuse it before any stage starts."""
        return False

    def options(self) -> dict[str, Any]:
        """The constructor arguments the user (or the template) set (``sampling``: see build_judge)."""
        out = self.model_dump(exclude={"kind", "template"}, exclude_none=True)
        if isinstance(getattr(self, "sampling", None), SamplingSettings):
            out.pop("sampling")
        return out


class RubricSpec(_Spec):
    kind: Literal["rubric"] = "rubric"
    judge_class: ClassVar[str] = "rlaif.judges.pointwise:PointwiseJudge"
    run_values: ClassVar[tuple[str, ...]] = ("adapter", "seed")

    samples: int = Field(3, ge=1, description="Judgments per response (K); valid scores are averaged.")
    max_retries: int = Field(2, ge=0, description="Re-ask for responses still missing valid judgments.")
    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=0.7, top_p=0.9, max_tokens=256),
        description="Sampling of the judgments (the run decides the seed).",
    )
    guided_regex: str | None = Field(
        None, description="Constrain the output to this regex (guided decoding)."
    )
    expected_score: bool = Field(False, description="Score = expectation over the label probabilities.")

    @property
    def scores_text(self) -> bool:
        """Graded scores on a scale with multi-character labels score each label as text."""
        if not self.expected_score:
            return False
        from rlaif.judges.label_scores import needs_continuations

        parser = load_template(self.template).parser
        return isinstance(parser, ScoreParserSpec) and needs_continuations(parser)


class LabelProbabilitySpec(_Spec):
    kind: Literal["label_probability"] = "label_probability"
    judge_class: ClassVar[str] = "rlaif.judges.yesno:LabelProbabilityJudge"

    good_label: str | None = Field(
        None, description="The label whose probability is the score (default: first)."
    )
    guided: bool = Field(True, description="Constrain the answer to the labels (guided decoding).")


class LikelihoodSpec(_Spec):
    kind: Literal["likelihood"] = "likelihood"
    judge_class: ClassVar[str] = "rlaif.judges.likelihood:ContrastiveLikelihoodJudge"

    positive: str | None = Field(None, description="Descriptor of the good context.")
    negative: str | None = Field(None, description="Descriptor of the bad context.")

    @property
    def scores_text(self) -> bool:
        return True


class PairwiseSpec(_Spec):
    kind: Literal["pairwise"] = "pairwise"
    slot: ClassVar[str] = COMPARE
    judge_class: ClassVar[str] = "rlaif.judges.pairwise:PairwiseJudge"

    both_orders: bool = Field(True, description="Ask in both orders and combine (position consistency).")
    chain_of_thought: bool = Field(False, description="Let the judge reason before choosing.")
    sampling: SamplingSettings | None = Field(
        None, description="Sampling of the judgments (None: the judge's)."
    )
    clamp: tuple[float, float] | None = Field(None, description="Clamp soft labels to [lo, hi].")
    guided: bool | None = Field(None, description="Constrain the answer to the labels (guided decoding).")
    calibrate: bool | None = Field(
        None, description="Subtract the batch's first-position bias (logit space)."
    )
    self_check: Literal["off", "refuse", "error"] | None = Field(
        None, description="Withhold or refuse a batch whose order agreement is at chance."
    )


class PrincipleSpec(PairwiseSpec):
    kind: Literal["principle"] = "principle"  # type: ignore[assignment]
    judge_class: ClassVar[str] = "rlaif.judges.principle:PrincipleJudge"
    run_values: ClassVar[tuple[str, ...]] = ("adapter", "seed", "principles", "chain_of_thought", "clamp")

    principles: str | None = Field(None, description="Principles file (name in prompts/ or path).")


class PythonSpec(_Spec):
    kind: Literal["python"] = "python"
    judge_class: ClassVar[str] = "rlaif.judges.custom:CallableJudge"
    run_values: ClassVar[tuple[str, ...]] = ()

    both_orders: bool = Field(True, description="A comparing function is asked in both orders.")

    @property
    def slot(self) -> str:  # type: ignore[override]
        from rlaif.judges.custom import callable_slot

        return callable_slot(self.template)


class LengthSpec(_Spec):
    """A baseline that needs no model: the longer (or shorter) reply scores higher."""

    kind: Literal["length"] = "length"
    judge_class: ClassVar[str] = "rlaif.judges.length:LengthJudge"
    run_values: ClassVar[tuple[str, ...]] = ()

    template: str = Field("length", description="Unused (no model is asked); kept for the record.")
    prefer: Literal["longer", "shorter"] = Field("shorter", description="Which reply scores higher.")


JudgeSpec = Annotated[
    RubricSpec
    | LabelProbabilitySpec
    | LikelihoodSpec
    | PairwiseSpec
    | PrincipleSpec
    | PythonSpec
    | LengthSpec,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter = TypeAdapter(JudgeSpec)
_MODELS: dict[str, type[_Spec]] = {
    m.model_fields["kind"].default: m
    for m in (
        RubricSpec,
        LabelProbabilitySpec,
        LikelihoodSpec,
        PairwiseSpec,
        PrincipleSpec,
        PythonSpec,
        LengthSpec,
    )
}
KINDS = tuple(_MODELS)
TEMPLATE_FREE = ("python", "length")


def template_kind(template: Template) -> str:
    """The judge kind a template drives: its front matter ``judge:`` (or variables) says score or
    compare; its parser refines a score template (choice parser: label probability; no parser and
    ``variables: [descriptor]``: likelihood; else rubric)."""
    declared = template.judge_kind
    variables = set(template.variables)
    if declared in (None, "pointwise") and not {"response_a", "response_b"} <= variables:
        if isinstance(template.parser, ChoiceParserSpec):
            return "label_probability"
        if template.parser is None and template.variables == ["descriptor"]:
            return "likelihood"
        if declared or "response" in variables:
            return "rubric"
    if declared == "principle" or (
        declared is None and {"response_a", "response_b", "principle"} <= variables
    ):
        return "principle"
    if declared == "pairwise" or {"response_a", "response_b"} <= variables:
        return "pairwise"
    raise ConfigError(
        f"template '{template.name}' ({template.path}): cannot tell what it judges; declare 'judge:' "
        "(pointwise | pairwise | principle) or the variables response / response_a, response_b"
    )


def _is_callable(name: str) -> bool:
    return bool(re.fullmatch(CALLABLE, name)) and not Path(name).expanduser().is_file()


def judge_spec(value: Any, where: str = "judge") -> JudgeSpec:
    """A spec from a name/path/``pkg.mod:fn``, a mapping (``template``, optional ``kind``, options),
    or a spec (returned as is)."""
    if isinstance(value, _Spec):
        return value
    if isinstance(value, (str, Path, Template)):
        value = {"template": value}
    if not isinstance(value, dict):
        raise ConfigError(_at(where) + "a judge is a name, a path, 'package.module:function' or a mapping")
    data = dict(value)
    template, kind = data.get("template"), data.get("kind")
    defaults: dict[str, Any] = {}
    if kind not in TEMPLATE_FREE:  # python and length need no template file
        if template is None:
            raise ConfigError(_at(where) + f"'template' is required for a judge of kind {kind or '(any)'}")
        if kind is None and not isinstance(template, Template) and _is_callable(str(template)):
            kind = "python"
        else:
            if isinstance(template, Template):
                tpl, data["template"] = template, str(template.path)
            else:
                data["template"] = ALIASES.get(str(template), str(template))
                tpl = _load(data["template"], where)
            inferred = template_kind(tpl)
            if kind is not None and kind != inferred:
                raise ConfigError(_at(where) + f"template '{tpl.name}' drives a {inferred} judge, not {kind}")
            kind, defaults = inferred, _front_defaults(tpl, kind=inferred)
    data["kind"] = kind
    try:
        return _ADAPTER.validate_python({**defaults, **data})
    except ValidationError as exc:
        raise ConfigError(_at(where) + _problem(exc, kind)) from None


def _problem(exc: ValidationError, kind: Any) -> str:
    """An unknown option names what the kind takes; anything else is the first field's problem."""
    extra = [str(e["loc"][-1]) for e in exc.errors() if e["type"] == "extra_forbidden"]
    model = _MODELS.get(kind)
    if extra and model is not None:
        takes = sorted(set(model.model_fields) - {"kind", "template"})
        return f"a {kind} judge does not take option(s) {', '.join(extra)}; it takes {', '.join(takes)}"
    return describe_validation_error(exc, limit=1)


def _at(where: str) -> str:
    """The message prefix naming where a spec came from (none when the caller names it itself)."""
    return f"{where}: " if where else ""


def _load(name: str, where: str) -> Template:
    try:
        return load_template(name)
    except RlaifError as exc:
        raise ConfigError(_at(where) + f"{exc}") from None


def _front_defaults(template: Template, kind: str) -> dict[str, Any]:
    """The template's ``metadata.judge_options``, validated by the kind's own model."""
    where = f"template '{template.name}' ({template.path}): metadata.judge_options"
    opts = template.metadata.get("judge_options") or {}
    if not isinstance(opts, dict):
        raise TemplateError(f"{where} must be a mapping")
    try:
        _ADAPTER.validate_python({**opts, "kind": kind, "template": str(template.path)})
    except ValidationError as exc:
        raise TemplateError(f"{where}: {_problem(exc, kind)}") from None
    return dict(opts)


def build_judge(spec: Any, engine: Any, **run: Any) -> Any:
    """The judge for ``spec`` on ``engine``; ``run`` values (seed, adapter, principles, ...) are passed
    where the kind takes them and dropped where it does not (a rubric has no principles). A ready
    engine-level ``sampling`` in ``run`` replaces the spec's."""
    spec = judge_spec(spec)
    cls = import_object(spec.judge_class, "judge class", error=ConfigError)
    if isinstance(spec, PythonSpec):
        return cls(spec.template, engine, **spec.options())
    kwargs = {k: v for k, v in run.items() if k in spec.run_values and v is not None}
    settings = getattr(spec, "sampling", None)
    if isinstance(settings, SamplingSettings):  # the spec sets the sampling, the run its seed
        kwargs["sampling"] = settings.to_sampling(seed=run.get("seed"))
    if isinstance(spec, RubricSpec):
        kwargs.pop("seed", None)
    if run.get("sampling") is not None and "sampling" in type(spec).model_fields:
        kwargs["sampling"] = run["sampling"]
    options = {**spec.options(), **kwargs}
    if spec.kind in TEMPLATE_FREE:
        return cls(engine, **options)
    template = load_template(spec.template)
    if not _is_shipped(template):
        options.setdefault("kind", "custom")  # the record kind of a user's template
    return cls(engine, template=template, **options)


def _is_shipped(template: Template) -> bool:
    path = template.path.resolve()
    return any(d.resolve() in path.parents for d in (REPO_PROMPTS_DIR, PACKAGED_PROMPTS_DIR) if d.exists())


def spec_slot(spec: Any) -> str:
    """``score`` or ``compare`` for a spec (or anything :func:`judge_spec` takes)."""
    return judge_spec(spec).slot
