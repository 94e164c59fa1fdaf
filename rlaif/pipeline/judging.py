"""The run's one judge setting, ``judge.template``, and what each use of a judge needs.

A run uses a judge in up to three places, and every one of them receives ``judge.template`` (a built-in
name, a template file, or ``package.module:function``) when it is set:

| use                                   | needs                | default when unset        |
| ------------------------------------- | -------------------- | ------------------------- |
| feedback, ``self_rewarding``          | pointwise            | ``self_rewarding_rubric`` |
| feedback, ``rl_cai``                  | principle            | ``cai_principle_choice``  |
| feedback, ``rlcd`` with ``rescore``   | pairwise / principle | ``pairwise``              |
| feedback, a plug-in source whose config model has a ``judge_template`` field | (its own) | (its own) |
| the win rate (``eval.win_rate_prompts``) | pairwise / principle | ``pairwise``            |
| the final round with ``final.reward: judge`` | pointwise     | ``self_rewarding_rubric`` |

The win rate compares two answers, so a run whose ``judge.template`` is pointwise (self-rewarding)
names the win-rate judge separately with ``eval.win_rate_judge``.

Guarantees: :func:`check_judges` (run by ``rlaif validate`` and ``rlaif run`` before anything starts)
loads each judge the run will use and rejects one of the wrong kind, naming the key; setting a
source's own judge key in ``feedback.options`` is an error pointing to ``judge.template``, so there is
one place to say which judge a run uses. Non-guarantee: a Python judge's output is checked only when it
runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlaif.config import RunConfig
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError, RlaifError, TemplateError
from rlaif.feedback import source_config_model
from rlaif.judges import CallableJudge, PairwiseJudge, PointwiseJudge, PrincipleJudge, load_judge

POINTWISE, PAIRWISE, PRINCIPLE = "pointwise", "pairwise", "principle"
COMPARES = (PAIRWISE, PRINCIPLE)

# feedback source -> (option key that receives judge.template, kinds it accepts, default spec)
SOURCE_JUDGES = {
    "self_rewarding": ("judge_template", (POINTWISE,), "self_rewarding_rubric"),
    "rl_cai": ("judge_template", (PRINCIPLE,), "cai_principle_choice"),
}


@dataclass
class JudgeUse:
    """One place a run uses a judge: the key that sets it, what it is for, the kinds it accepts."""

    key: str
    purpose: str
    kinds: tuple[str, ...]
    spec: str


def judge_kind(judge: Any) -> str:
    """``pointwise``, ``pairwise`` or ``principle`` for a judge made by :func:`rlaif.judges.load_judge`."""

    if isinstance(judge, CallableJudge) or getattr(judge, "judge_type", None) in (POINTWISE, PAIRWISE):
        return judge.judge_type
    if isinstance(judge, PrincipleJudge):
        return PRINCIPLE
    if isinstance(judge, PairwiseJudge):
        return PAIRWISE
    if isinstance(judge, PointwiseJudge):
        return POINTWISE
    raise ConfigError(f"unknown judge type {type(judge).__name__}")


def judge_label(judge: Any, spec: str) -> str:
    """A short human name for the report: the spec and, for templates, the file it came from."""
    tpl = getattr(judge, "template", None)
    path = getattr(tpl, "path", None)
    return f"{spec} ({judge_kind(judge)}{', ' + path.name if path else ''})"


def feedback_options(cfg: RunConfig) -> dict:
    """``feedback.options`` with ``judge.template`` handed to the source's judge key."""
    options = dict(cfg.feedback.options)
    spec = cfg.judge.template
    where = cfg.source_file or "config"
    source = cfg.feedback.source
    if source in SOURCE_JUDGES:
        key = SOURCE_JUDGES[source][0]
        if key in options or "template" in (options.get("judge_options") or {}):
            key = key if key in options else "judge_options.template"
            raise ConfigError(
                f"{where}: 'feedback.options.{key}': the run's judge is set by 'judge.template' "
                "(one setting for feedback, evaluation and the final round); move it there"
            )
        if spec:
            options[key] = spec
    elif source == "rlcd" and isinstance(options.get("rescore"), dict):
        rescore = dict(options["rescore"])
        if "judge" in rescore:
            raise ConfigError(
                f"{where}: 'feedback.options.rescore.judge': the run's judge is set by 'judge.template' "
                "(one setting for feedback, evaluation and the final round); move it there"
            )
        if spec:
            rescore["judge"] = spec
        options["rescore"] = rescore
    elif spec and ":" in source and _plugin_takes_judge(source):
        options.setdefault("judge_template", spec)
    return options


def _plugin_takes_judge(source: str) -> bool:
    """A plug-in source receives judge.template when its config model declares ``judge_template``."""

    model = source_config_model(source)
    return model is not None and "judge_template" in getattr(model, "model_fields", {})


def judge_uses(cfg: RunConfig) -> list[JudgeUse]:
    """Every judge the run will build, with the spec it will get."""
    spec = cfg.judge.template
    uses = []
    source = cfg.feedback.source
    if source in SOURCE_JUDGES:
        _, kinds, default = SOURCE_JUDGES[source]
        uses.append(JudgeUse("judge.template", f"feedback.source={source}", kinds, spec or default))
    elif source == "rlcd" and isinstance(cfg.feedback.options.get("rescore"), dict):
        uses.append(JudgeUse("judge.template", "rlcd rescore", COMPARES, spec or "pairwise"))
    elif spec and ":" in source and _plugin_takes_judge(source):
        uses.append(JudgeUse("judge.template", f"feedback.source={source}", (POINTWISE, *COMPARES), spec))
    if cfg.eval.win_rate_prompts is not None:
        key = "eval.win_rate_judge" if cfg.eval.win_rate_judge else "judge.template"
        uses.append(
            JudgeUse(
                key,
                "the win rate (eval.win_rate_prompts)",
                COMPARES,
                cfg.eval.win_rate_judge or spec or PAIRWISE,
            )
        )
    if cfg.final.kind != "none" and cfg.final.reward == "judge":
        uses.append(
            JudgeUse("judge.template", "final.reward=judge", (POINTWISE,), spec or "self_rewarding_rubric")
        )
    return uses


def check_judges(cfg: RunConfig) -> None:
    """Load every judge the run will use (no model is loaded, nothing is generated) and check its kind."""

    where = cfg.source_file or "config"
    uses = judge_uses(cfg)
    if cfg.judge.template and not any(u.key == "judge.template" for u in uses):
        raise ConfigError(
            f"{where}: 'judge.template' is set but no stage of this run uses a judge "
            f"(feedback.source={cfg.feedback.source}, final.reward={cfg.final.reward}; the win rate uses "
            f"{'eval.win_rate_judge' if cfg.eval.win_rate_judge else 'no judge: eval.win_rate_prompts is unset'})"
        )
    if cfg.eval.win_rate_judge and cfg.eval.win_rate_prompts is None:
        raise ConfigError(f"{where}: 'eval.win_rate_judge' is set but 'eval.win_rate_prompts' is not")
    for use in uses:
        try:
            judge = load_judge(use.spec, ScriptedEngine(lambda *_: ""))
            kind = judge_kind(judge)
            if getattr(judge, "template", None) is not None and not isinstance(judge.template, str):
                check_judge_template(judge.template, kind)
        except RlaifError as exc:
            raise ConfigError(f"{where}: '{use.key}': {exc}") from None
        if kind not in use.kinds:
            hint = (
                "; name a pairwise judge for it with eval.win_rate_judge (e.g. pairwise)"
                if use.key == "judge.template" and "win rate" in use.purpose
                else ""
            )
            raise ConfigError(
                f"{where}: '{use.key}': '{use.spec}' is a {kind} judge, but {use.purpose} needs a "
                f"{' or '.join(use.kinds)} judge{hint}"
            )


# What each judge kind passes to its template (rlaif.judges renders with exactly these).
JUDGE_VARIABLES = {
    PAIRWISE: {"prompt", "response_a", "response_b", "conversation"},
    PRINCIPLE: {"prompt", "response_a", "response_b", "principle", "conversation"},
    POINTWISE: {"prompt", "response", "conversation"},
}


def check_judge_template(tpl: Any, kind: str) -> None:
    """Render a judge's template with dummy values for what its judge supplies, so a variable the judge
    never provides, or one the body uses without declaring it, fails now instead of mid-run."""

    supplied = JUDGE_VARIABLES[kind]
    unknown = sorted(set(tpl.variables) - supplied)
    if unknown:
        raise TemplateError(
            f"template '{tpl.name}' ({tpl.path}): declares variable(s) {', '.join(unknown)} that a "
            f"{kind} judge does not supply (it supplies {', '.join(sorted(supplied))})"
        )
    dummy = {v: "x" for v in supplied} | {"conversation": [{"role": "user", "content": "x"}]}
    tpl.render(**{v: dummy[v] for v in tpl.variables})
