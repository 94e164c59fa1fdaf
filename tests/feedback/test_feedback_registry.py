"""The feedback-source registry, user plug-ins, and writing a result to disk."""

from __future__ import annotations

import json

import pytest
from fb_plugin import EchoConfig
from fb_scripted import numbered_prompts

from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError
from rlaif.feedback import RLCDConfig, rlcd, run_source
from rlaif.feedback.registry import BUILTINS, describe
from rlaif.records import load_pairs


def test_builtin_registry():
    assert set(BUILTINS) == {
        "rlcd",
        "sl_cai",
        "rl_cai",
        "self_rewarding",
        "rlcf",
        "instruction_contrast",
    }
    assert describe("rlcd").run is rlcd and describe("rlcd").config_model is RLCDConfig


def test_every_config_field_has_a_description():
    import typing

    from pydantic import BaseModel

    def models_in(annotation):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in typing.get_args(annotation):
            yield from models_in(arg)

    seen = set()

    def check(model, where):
        if model in seen:
            return
        seen.add(model)
        assert model.model_config.get("extra") == "forbid", where
        for name, field in model.model_fields.items():
            assert field.description, f"{where}.{name} has no description"
            for sub in models_in(field.annotation):
                check(sub, f"{where}.{name}")

    for name in BUILTINS:
        check(describe(name).config_model, name)
    assert len(seen) >= 8  # the nested models (output rules, rescore, self-instruct, ...) too


def test_user_plugin_by_dotted_path():
    fn = describe("fb_plugin:echo_source").run
    assert describe("fb_plugin:echo_source").config_model is EchoConfig
    out = run_source(
        "fb_plugin:echo_source", numbered_prompts(), ScriptedEngine(lambda c, i, s: "hi"), {"suffix": "?"}
    )
    assert fn.__name__ == "echo_source" and [p.chosen for p in out.pairs] == ["hi?", "hi?"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "nope",
            "unknown feedback source 'nope' (built-in: instruction_contrast, rl_cai, rlcd, rlcf, self_rewarding, sl_cai",
        ),
        ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
        ("fb_plugin:missing", "module 'fb_plugin' has no attribute 'missing'"),
        ("fb_plugin:not_a_function", "'not_a_function' is not callable"),
    ],
)
def test_bad_source_specs(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        describe(spec)


def test_run_source_checks_the_accounting():
    with pytest.raises(ConfigError, match="counts do not add up"):
        run_source("fb_plugin:unbalanced_source", numbered_prompts(), ScriptedEngine(lambda c, i, s: "x"))


def test_result_write_round_trips(tmp_path):
    from fb_scripted import PerRequestScriptedEngine, call_source, numbered_prompts

    engine = PerRequestScriptedEngine(
        lambda conv, i, s: f"{'good' if 'harmful' not in str(conv) else 'bad'} {s.seed}"
    )
    result = call_source(rlcd, numbered_prompts(3), engine, {}, seed=1)
    paths = result.write(tmp_path / "out")
    assert load_pairs(paths["pairs"]) == result.pairs
    stats = json.loads(paths["stats"].read_text())
    assert stats["prompts_in"] == 3 and stats["pairs_out"] == 3
    assert paths["dropped"].read_text() == ""
