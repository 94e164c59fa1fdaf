"""The run's one ``judge:`` block and every place the run uses it.

``judge: {template, kind, options}`` is one :data:`rlaif.judges.spec.JudgeSpec` (kind from the
template unless given; typed options, the template's front matter supplying defaults). A run uses a
judge in up to three places; each asks for a slot, and takes its default judge when the block is empty:

| use                                         | slot    | default                                   |
| ------------------------------------------- | ------- | ----------------------------------------- |
| a feedback source that declares a slot      | its own | its own (``describe(source).default_judge``) |
| the win rate (``eval.win_rate_prompts``)    | compare | ``pairwise``                              |
| the final round with ``final.reward: judge`` | score  | ``self_rewarding_rubric``                 |

No use branches on a source's name: a source's slot, narrowing kinds and default come from its
declaration (:func:`rlaif.feedback.registry.describe`). The win rate compares two answers, so a run
whose judge scores (self-rewarding) names the win-rate judge separately with ``eval.win_rate_judge``.

Guarantees: :func:`check_judges` (run before anything starts) builds each judge spec the run will use
(no model is loaded, nothing generated), checks its slot against the use, and renders its template
with dummy values; a judge key set inside ``feedback.options`` is an error pointing to ``judge:``.
Non-guarantee: a Python judge's output is checked only when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlaif.config import RunConfig
from rlaif.errors import ConfigError, RlaifError, TemplateError
from rlaif.feedback import describe, source_options
from rlaif.judges.spec import COMPARE, SCORE, TEMPLATE_FREE, judge_spec
from rlaif.prompts import load_template

# keys a source carried before the run's judge: block; each is refused with a pointer to it
MOVED_TO_JUDGE = {
    "judge_template": "judge.template",
    "judge_options": "judge.options (and judge.template)",
    "judge_samples": "judge.options.samples",
    "judge_max_retries": "judge.options.max_retries",
    "judge_sampling": "judge.options.sampling",
    "rescore.judge": "judge.template",
    "rescore.judge_options": "judge.options",
}


RUN_JUDGE = "judge.template"  # the key messages name for the run's judge block
SLOT_WORDS = {SCORE: "pointwise", COMPARE: "pairwise or principle"}
IS_WORDS = {SCORE: "pointwise", COMPARE: "pairwise"}


@dataclass
class JudgeUse:
    """One place a run uses a judge: the key that sets it, what it is for, the slot (and kinds) it takes."""

    key: str
    purpose: str
    slot: str
    spec: Any
    kinds: tuple[str, ...] | None = None


def run_judge(cfg: RunConfig, default: Any) -> Any:
    """The run's judge spec as written, or ``default`` when the ``judge:`` block names none."""
    spec = cfg.judge.spec
    if spec is not None and "template" not in spec and "kind" not in spec:
        raise ConfigError(
            f"{cfg.source_file or 'config'}: 'judge.options' is set without 'judge.template' or 'judge.kind'; "
            "name the judge the options are for (e.g. judge.template: self_rewarding_rubric)"
        )
    return spec or default


def source_judge(cfg: RunConfig) -> dict | None:
    """What a feedback source with a judge slot receives as ``context.judge`` (None: its default)."""
    if cfg.judge.spec is None:
        return None
    return judge_spec(run_judge(cfg, None), where="judge").model_dump(mode="json")


def win_rate_judge(cfg: RunConfig) -> Any:
    """The win-rate judge: ``eval.win_rate_judge``, else the run's judge, else pairwise."""
    return cfg.eval.win_rate_judge or run_judge(cfg, "pairwise")


def final_judge(cfg: RunConfig) -> Any:
    """The judge that rewards the final round (``final.reward: judge``)."""
    return run_judge(cfg, "self_rewarding_rubric")


def judge_label(judge: Any, spec: Any) -> str:
    """A short human name for the report: the spec, the slot and, for templates, the file."""
    path = getattr(getattr(judge, "template", None), "path", None)
    name = spec.get("template") or spec.get("kind") if isinstance(spec, dict) else spec
    return f"{name} ({judge.slot}{', ' + path.name if path else ''})"


def feedback_options(cfg: RunConfig) -> dict:
    """``feedback.options`` as written, refusing a judge key there (the run's judge is ``judge:``)."""
    options = dict(cfg.feedback.options)
    rescore = options.get("rescore") if isinstance(options.get("rescore"), dict) else {}
    present = [k for k in options if k in MOVED_TO_JUDGE] + [
        f"rescore.{k}" for k in rescore if f"rescore.{k}" in MOVED_TO_JUDGE
    ]
    if present:
        key = present[0]
        raise ConfigError(
            f"{cfg.source_file or 'config'}: 'feedback.options.{key}': the run's judge is set in one place "
            f"for feedback, evaluation and the final round; use '{MOVED_TO_JUDGE[key]}'"
        )
    return options


def judge_uses(cfg: RunConfig) -> list[JudgeUse]:
    """Every judge the run will build, with the spec it will get."""
    uses = []
    declared = describe(cfg.feedback.source)
    if declared.judge is not None and declared.uses_judge(_options(cfg)):
        uses.append(
            JudgeUse(
                RUN_JUDGE, f"feedback.source={cfg.feedback.source}", declared.judge,
                run_judge(cfg, declared.default_judge), declared.judge_kinds,
            )
        )  # fmt: skip
    if cfg.eval.win_rate_prompts is not None:
        key = "eval.win_rate_judge" if cfg.eval.win_rate_judge else RUN_JUDGE
        uses.append(JudgeUse(key, "the win rate (eval.win_rate_prompts)", COMPARE, win_rate_judge(cfg)))
    if cfg.final.kind != "none" and cfg.final.reward == "judge":
        uses.append(JudgeUse(RUN_JUDGE, "final.reward=judge", SCORE, final_judge(cfg)))
    return uses


def _options(cfg: RunConfig) -> Any:
    try:
        return source_options(cfg.feedback.source, feedback_options(cfg))
    except RlaifError as exc:
        raise ConfigError(f"{cfg.source_file or 'config'}: 'feedback.options': {exc}") from None


def check_judges(cfg: RunConfig) -> None:
    """Validate every judge spec the run will use and check its slot (no model loaded, nothing sent)."""
    where = cfg.source_file or "config"
    uses = judge_uses(cfg)
    if cfg.judge.spec is not None and not any(u.key == RUN_JUDGE for u in uses):
        raise ConfigError(
            f"{where}: '{RUN_JUDGE}' is set but no stage of this run uses a judge "
            f"(feedback.source={cfg.feedback.source}, final.reward={cfg.final.reward}; the win rate uses "
            f"{'eval.win_rate_judge' if cfg.eval.win_rate_judge else 'no judge: eval.win_rate_prompts is unset'})"
        )
    if cfg.eval.win_rate_judge and cfg.eval.win_rate_prompts is None:
        raise ConfigError(f"{where}: 'eval.win_rate_judge' is set but 'eval.win_rate_prompts' is not")
    for use in uses:
        try:
            spec = judge_spec(use.spec, where="")
            slot = spec.slot
            if spec.kind not in TEMPLATE_FREE:
                check_judge_template(load_template(spec.template), spec.kind)
        except RlaifError as exc:
            raise ConfigError(f"{where}: '{use.key}': {exc}") from None
        _check_slot(use, spec, slot, where)


def text_scoring_judges(cfg: RunConfig) -> list[JudgeUse]:
    """The uses whose judge scores given text (likelihood; graded scores on a 1-10 scale): their engine
    must be the in-process vLLM engine without LoRA. For the run's compile step, which knows whether
    the policy engine serves adapters."""
    return [use for use in judge_uses(cfg) if judge_spec(use.spec, where=use.key).scores_text]


def _check_slot(use: JudgeUse, spec: Any, slot: str, where: str) -> None:
    name = spec.template if spec.kind != "length" else spec.kind
    if slot != use.slot:
        hint = (
            "; name a comparing judge for it with eval.win_rate_judge (e.g. pairwise)"
            if use.key == RUN_JUDGE and "win rate" in use.purpose
            else ""
        )
        raise ConfigError(
            f"{where}: '{use.key}': '{name}' is a {IS_WORDS[slot]} judge, but {use.purpose} needs a "
            f"{SLOT_WORDS[use.slot]} judge{hint} (judge kind: {spec.kind})"
        )
    if use.kinds and spec.kind not in use.kinds:
        raise ConfigError(
            f"{where}: '{use.key}': '{name}' is a {spec.kind} judge, but {use.purpose} needs a "
            f"{' or '.join(use.kinds)} judge"
        )


# What each judge kind passes to its template (rlaif.judges renders with exactly these).
_SCORE_VARIABLES = {"prompt", "response", "conversation"}
JUDGE_VARIABLES = {
    "rubric": _SCORE_VARIABLES,
    "label_probability": _SCORE_VARIABLES,
    "likelihood": {"descriptor"},
    "pairwise": {"prompt", "response_a", "response_b", "conversation"},
    "principle": {"prompt", "response_a", "response_b", "principle", "conversation"},
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
