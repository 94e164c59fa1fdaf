"""What sources declare (rlaif.feedback.registry): the pipeline reads slots, needs and record lists
from here instead of branching on a source's name."""

from __future__ import annotations

import pytest
from fb_scripted import PerRequestScriptedEngine, call_source

from rlaif.errors import ConfigError
from rlaif.feedback import describe, source_options
from rlaif.feedback.self_rewarding import self_rewarding
from rlaif.records import Message, PromptRecord


def test_every_builtin_declares_itself_and_a_dotted_path_is_the_same_source():
    expected = {
        "rlcd": ("compare", frozenset(), "pairwise"),
        "sl_cai": (None, frozenset(), None),
        "rl_cai": ("compare", frozenset(), "cai_principle_choice"),
        "self_rewarding": ("score", frozenset(), "self_rewarding_rubric"),
        "rlcf": (None, frozenset({"sandbox"}), None),
        "instruction_contrast": (None, frozenset(), None),
    }
    for name, (slot, needs, default) in expected.items():
        spec = describe(name)
        assert (spec.judge, spec.needs, spec.default_judge) == (slot, needs, default), name
        assert spec.config_model is not None and "pairs" in spec.writes
    assert describe("rlaif.feedback.instruction_contrast:instruction_contrast") == describe(
        "instruction_contrast"
    )
    assert "sft" in describe("sl_cai").writes and "new_prompts" in describe("self_rewarding").writes
    assert describe("rl_cai").judge_kinds == ("principle",)


def test_judge_use_and_text_scoring_depend_on_the_options():
    rlcd = describe("rlcd")
    assert not rlcd.uses_judge(source_options("rlcd", {})) and rlcd.uses_judge(
        source_options("rlcd", {"rescore": {}})
    )
    contrast = describe("instruction_contrast")
    assert not contrast.scores_text(source_options("instruction_contrast", {}))
    assert contrast.scores_text(source_options("instruction_contrast", {"num_generations": 2}))


def test_an_undeclared_plugin_is_described_from_its_attributes():
    spec = describe("fb_plugin:echo_source")
    assert spec.judge is None and spec.needs == frozenset() and spec.config_model.__name__ == "EchoConfig"


def test_self_rewarding_takes_any_score_judge_and_refuses_a_compare_one():
    prompts = [PromptRecord(id="p", messages=[Message(role="user", content="hi")])]
    engine = PerRequestScriptedEngine(lambda conv, i, s: "x" * (3 + 4 * i))  # candidates of distinct lengths
    result = call_source(self_rewarding, prompts, engine, {"num_generations": 3}, judge={"kind": "length"})
    pair = result.pairs[0]
    assert len(pair.chosen) < len(pair.rejected)  # the length judge (prefer shorter) picked them
    assert pair.metadata["judge_template"]["name"] == "length"
    with pytest.raises(ConfigError, match="self_rewarding judge: 'pairwise' is a pairwise judge"):
        call_source(self_rewarding, prompts, engine, {}, judge="pairwise")
