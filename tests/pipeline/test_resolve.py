"""The run resolved once (rlaif.pipeline.resolve): every option block as its stage's typed model, run-time
values filled in per stage without validating again, and what the run decides refused in the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import resolve_plugin  # a plug-in module next to this test

from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError
from rlaif.feedback import RLCDConfig, run_source
from rlaif.feedback.context import SourceContext
from rlaif.pairs import PairFilterConfig
from rlaif.pipeline.compile import resolve
from rlaif.records import Message, PromptRecord

BASE = {
    "seed": 4,
    "feedback": {"source": "rlcd", "options": {"max_retries": 2}},
    "pairs": {"options": {"min_margin": 0.5}},
    "dpo": {"beta": 0.2},
}


@pytest.fixture
def config(run_config):
    """The shared builder's run with these blocks; a change replaces a whole top-level block."""
    return lambda **changes: run_config(**{**BASE, **changes})


def test_every_block_is_its_stages_typed_model(config):
    from rlaif.train.configs import DPOConfig, PPOConfig

    run = resolve(config(final={"kind": "ppo", "options": {"rollout": "hf"}}))
    fb, pairs, dpo, final = (
        run.block(k) for k in ("feedback.options", "pairs.options", "dpo", "final.options")
    )
    assert isinstance(fb, RLCDConfig) and fb.max_retries == 2
    assert isinstance(pairs, PairFilterConfig) and pairs.min_margin == 0.5
    assert isinstance(dpo, DPOConfig) and dpo.beta == 0.2 and dpo.seed == 5
    run_dir = run.config.run_dir()
    assert dpo.output_dir == run_dir / "round_1" / "train" and dpo.policy.path == Path(run.config.policy.path)
    assert isinstance(final, PPOConfig) and final.prompts == [run_dir / "final" / "train" / "prompts.jsonl"]
    with pytest.raises(ConfigError, match="'final.options' was not resolved"):
        resolve(config()).block("final.options")


def test_run_time_values_fill_defaults_and_forced_keys_without_validating_again(config, tmp_path):
    from rlaif.train.configs import PolicySpec

    run = resolve(config(dpo={"beta": 0.2, "seed": 77}))
    policy = PolicySpec(path=tmp_path / "m2", adapter=tmp_path / "a1")
    round_2 = run.runtime(
        "dpo",
        defaults={"seed": 6, "output_dir": tmp_path / "r2"},
        forced={"policy": policy, "pairs": [tmp_path]},
    )
    assert round_2.seed == 77  # the user's value wins over a stage default
    assert round_2.output_dir == tmp_path / "r2" and round_2.policy == policy and round_2.pairs == [tmp_path]
    assert run.block("dpo").output_dir != round_2.output_dir  # the resolved block itself is unchanged


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seed": 1}, "'feedback.options.seed' is decided by the run"),
        ({"adapter": "x"}, "'feedback.options.adapter' is decided by the run"),
        (
            {"filter": {"dedup": False}},
            "'feedback.options.filter': a run filters pairs in one place, 'pairs.options'",
        ),
        ({"max_retries": -1}, "feedback.options.max_retries"),
    ],
)
def test_what_the_run_decides_and_per_source_filters_are_refused(config, options, message):
    with pytest.raises(ConfigError, match=message):
        resolve(config(feedback={"source": "rlcd", "options": options}))


def test_bad_source_names_the_key(config):
    with pytest.raises(ConfigError, match="'feedback.source': unknown feedback source 'nope'"):
        resolve(config(feedback={"source": "nope"}))


def test_a_plugin_source_gets_its_options_validated_once_and_the_context(config):
    resolve_plugin.VALIDATIONS["count"] = 0
    run = resolve(config(feedback={"source": "resolve_plugin:counting_source", "options": {"suffix": "?"}}))
    options = run.block("feedback.options")
    assert resolve_plugin.VALIDATIONS["count"] == 1
    prompts = [PromptRecord(id=f"p{i}", messages=[Message(role="user", content="q")]) for i in range(2)]
    context = SourceContext(seed=9, round=2, adapter="a", chunk=1)
    engine = ScriptedEngine(lambda *_: "x")
    for _ in range(3):  # e.g. three chunks
        res = run_source("resolve_plugin:counting_source", prompts, engine, options, context)
        assert res.stats.drops == {"not_paired": 2}
    assert resolve_plugin.VALIDATIONS["count"] == 1  # never validated again per chunk
    assert all(got is options and ctx is context for got, ctx in resolve_plugin.CALLS[-3:])
