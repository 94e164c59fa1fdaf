"""The one judge setting: how ``judge.template`` reaches each use (feedback options, the final round's
judge reward). The kind checks through the CLI are in test_validate_checks.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import BaseModel, ConfigDict

from rlaif.config import RunConfig
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError
from rlaif.pipeline.judging import feedback_options, judge_uses


class JudgedSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    judge_template: str = "its_own_default"


def judged_source(prompts, engine, config=None, context=None, *, judge_engine=None):
    """A plug-in that declares a judge."""
    raise AssertionError("not called here")


judged_source.config_model = JudgedSourceConfig


def config(**overrides) -> RunConfig:
    data = {"name": "j", "policy": {"path": "m"}, "prompts": {"kind": "jsonl", "path": "p"},
            "feedback": {"source": "self_rewarding"}}  # fmt: skip
    data.update(overrides)
    return RunConfig.model_validate(data)


def test_judge_template_reaches_each_feedback_source():
    spec = "pipeline_judges:length_score"
    assert feedback_options(config(judge={"template": spec}))["judge_template"] == spec
    assert "judge_template" not in feedback_options(config())  # the source's own default applies
    rl = config(judge={"template": "my_principles.j2"}, feedback={"source": "rl_cai"})
    assert feedback_options(rl)["judge_template"] == "my_principles.j2"
    rescore = config(judge={"template": "my_pairwise.j2"},
                     feedback={"source": "rlcd", "options": {"rescore": {"threshold": 0.6}}})  # fmt: skip
    assert feedback_options(rescore)["rescore"] == {"threshold": 0.6, "judge": "my_pairwise.j2"}
    plugin = config(judge={"template": "x.j2"}, feedback={"source": f"{__name__}:judged_source"})
    assert feedback_options(plugin)["judge_template"] == "x.j2"
    with pytest.raises(ConfigError, match=r"'feedback.options.judge_template'.*judge.template"):
        feedback_options(config(feedback={"source": "self_rewarding", "options": {"judge_template": "a"}}))


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
    assert [(u.purpose, u.spec) for u in judge_uses(cfg)] == [
        (f"feedback.source={__name__}:judged_source", "pairwise")
    ]


def test_rl_cai_judge_options_template_in_a_run_points_to_judge_template():
    cfg = config(feedback={"source": "rl_cai", "options": {"judge_options": {"template": "mine.j2"}}})
    with pytest.raises(ConfigError, match=r"'feedback.options.judge_options.template'.*judge.template"):
        feedback_options(cfg)
