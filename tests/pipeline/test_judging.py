"""The one judge setting: how ``judge.template`` reaches each use (feedback options, the final round's
judge reward). The kind checks through the CLI are in test_validate_checks.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import BaseModel, ConfigDict

from rlaif.config import RunConfig
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError
from rlaif.feedback import feedback_source
from rlaif.pipeline.judging import (
    check_judges,
    feedback_options,
    judge_uses,
    source_judge,
    text_scoring_judges,
)


class JudgedSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 1


@feedback_source(config=JudgedSourceConfig, judge="compare", default_judge="pairwise")
def judged_source(prompts, engine, config=None, context=None, *, judge_engine=None):
    """A plug-in that declares a judge slot."""
    raise AssertionError("not called here")


def config(**overrides) -> RunConfig:
    data = {"name": "j", "policy": {"path": "m"}, "prompts": {"kind": "jsonl", "path": "p"},
            "feedback": {"source": "self_rewarding"}}  # fmt: skip
    data.update(overrides)
    return RunConfig.model_validate(data)


def test_the_run_judge_reaches_sources_through_their_context_never_their_options():
    spec = "pipeline_judges:length_score"
    cfg = config(judge={"template": spec})
    assert feedback_options(cfg) == {} and source_judge(cfg) == {
        "kind": "python",
        "template": spec,
        "both_orders": True,
    }
    assert source_judge(config()) is None  # the source's declared default applies
    rubric = source_judge(config(judge={"template": "rubric_fewshot", "options": {"samples": 1}}))
    assert (
        rubric["kind"] == "rubric" and rubric["samples"] == 1 and rubric["expected_score"] is True
    )  # front matter
    for key, options in [("judge_template", {"judge_template": "a"}), ("judge_samples", {"judge_samples": 2}),
                         ("rescore.judge", {"rescore": {"judge": "pairwise"}})]:  # fmt: skip
        with pytest.raises(ConfigError, match=rf"'feedback.options.{key}'.*judge\."):
            feedback_options(config(feedback={"source": "rlcd", "options": options}))


def test_judge_uses_list_every_place_with_its_default():
    cfg = config(
        eval={"win_rate_prompts": {"kind": "jsonl", "path": "p"}},
        final={"kind": "ppo", "reward": "judge"},
    )
    uses = [(u.key, u.purpose, u.spec) for u in judge_uses(cfg)]
    assert uses == [
        ("judge.template", "feedback.source=self_rewarding", "self_rewarding_rubric"),
        ("judge.template", "the win rate (eval.win_rate_prompts)", "pairwise"),
        ("judge.template", "final.reward=judge", "self_rewarding_rubric"),
    ]


def test_final_round_judge_reward_uses_judge_template():
    from rlaif.pipeline.final_round import judge_reward

    engine = ScriptedEngine(lambda *_: "unused")
    ctx = SimpleNamespace(
        cfg=config(judge={"template": "pipeline_judges:length_score"}), judge_engine=lambda: engine
    )
    reward = judge_reward(ctx)
    prompts = [[{"role": "user", "content": "q"}]] * 4
    completions = [[{"role": "assistant", "content": "one two three"}]] * 4
    # 3 words -> 3.0; every fourth response is declined by the judge (None: excluded, never invented)
    assert reward(prompts, completions) == [3.0, 3.0, 3.0, None]


def test_a_plugin_source_that_declares_a_judge_is_a_judge_use():
    cfg = config(judge={"template": "pairwise"}, feedback={"source": f"{__name__}:judged_source"})
    assert [(u.purpose, u.slot, u.spec) for u in judge_uses(cfg)] == [
        (f"feedback.source={__name__}:judged_source", "compare", {"template": "pairwise"})
    ]
    check_judges(cfg)
    scorer = config(judge={"template": "rubric_fewshot"}, feedback={"source": f"{__name__}:judged_source"})
    with pytest.raises(ConfigError, match="is a pointwise judge, but feedback.source=.* needs a pairwise"):
        check_judges(scorer)


def test_every_score_kind_fills_self_rewardings_slot_and_options_are_typed():
    for spec in ("rubric_fewshot", "harm_yesno", {"kind": "length"}, "pipeline_judges:length_score"):
        check_judges(config(judge=spec if isinstance(spec, dict) else {"template": spec}))
    with pytest.raises(ConfigError, match=r"a rubric judge does not take option\(s\) both_orders"):
        check_judges(config(judge={"template": "rubric_fewshot", "options": {"both_orders": False}}))
    with pytest.raises(ConfigError, match="drives a rubric judge, not pairwise"):
        check_judges(config(judge={"template": "rubric_fewshot", "kind": "pairwise"}))


def test_judges_that_score_text_are_listed_for_the_engine_check():
    assert text_scoring_judges(config()) == []
    uses = text_scoring_judges(config(judge={"template": "contrast_harmless"}))
    assert [(u.key, u.purpose) for u in uses] == [("judge.template", "feedback.source=self_rewarding")]
