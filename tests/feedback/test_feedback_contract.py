"""The source contract: validated options, run-time values from SourceContext, nested sampling blocks."""

from __future__ import annotations

import fb_plugin
import pytest
from fb_scripted import PerRequestScriptedEngine, call_source, numbered_prompts
from pydantic import ValidationError

from rlaif.feedback import SourceContext, run_source
from rlaif.feedback.instruction_contrast import InstructionContrastConfig
from rlaif.feedback.rl_cai import RLCAIConfig
from rlaif.feedback.rlcd import RLCDConfig, rlcd
from rlaif.feedback.self_rewarding import SelfRewardingConfig
from rlaif.feedback.sl_cai import SLCAIConfig


def test_a_partial_sampling_block_keeps_the_sources_own_defaults():
    sr = SelfRewardingConfig(sampling={"max_tokens": 512})
    assert (sr.sampling.temperature, sr.sampling.top_p, sr.sampling.max_tokens) == (0.7, 0.9, 512)
    assert SLCAIConfig(critique={"max_tokens": 5}).critique.temperature == 0.7
    assert InstructionContrastConfig(sampling={"top_p": 0.5}).sampling.temperature == 0.8
    assert RLCDConfig().sampling.model_dump() == {"temperature": 1.0, "top_p": 1.0, "max_tokens": 128}


@pytest.mark.parametrize(
    ("model", "options"),
    [
        (RLCDConfig, {"temperature": 0.5}),  # the flat spelling is gone: one nested block
        (RLCDConfig, {"sampling": {"seed": 3}}),  # the run decides seeds, not the block
        (SelfRewardingConfig, {"judge_max_tokens": 12}),
        (RLCAIConfig, {"response": {"max_tokens": 12}}),
        (RLCDConfig, {"seed": 1}),  # run-time values come from SourceContext
        (SLCAIConfig, {"round": 2}),
        (SelfRewardingConfig, {"adapter": "/a"}),
    ],
)
def test_moved_and_run_time_keys_are_refused(model, options):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(options)


def test_context_values_reach_requests_and_provenance():
    engine = PerRequestScriptedEngine(lambda conv, i, s: f"reply {s.seed}")
    result = call_source(rlcd, numbered_prompts(), engine, {}, seed=3, round=2, adapter="/adapters/round1")
    assert [adapter for _, _, adapter in engine.calls] == ["/adapters/round1"]
    assert all(p.round == 2 and p.metadata["adapter"] == "/adapters/round1" for p in result.pairs)
    other_chunk = call_source(
        rlcd, numbered_prompts(), PerRequestScriptedEngine(lambda c, i, s: "x"), {}, seed=4
    )
    seeds = [p.metadata["seeds"]["positive"] for p in result.pairs]
    assert seeds != [p.metadata["seeds"]["positive"] for p in other_chunk.pairs]


def test_run_source_validates_once_and_passes_plugin_dicts_through():
    fb_plugin.RECEIVED.clear()
    context = SourceContext(seed=7, round=1, adapter=None, chunk=3)
    run_source("fb_plugin:recording_source", numbered_prompts(), PerRequestScriptedEngine(lambda c, i, s: "x"),
               {"anything": 1}, context)  # fmt: skip
    options, got = fb_plugin.RECEIVED[-1]
    assert options == {"anything": 1} and got is context
    validated = RLCDConfig(sampling={"max_tokens": 8})
    engine = PerRequestScriptedEngine(
        lambda conv, i, s: f"{conv[0].content} {s.max_tokens}"
    )  # the affix note
    result = run_source("rlcd", numbered_prompts(1), engine, validated, context)
    assert result.pairs[0].chosen.endswith(" 8") and result.pairs[0].metadata["sampling"]["max_tokens"] == 8


@pytest.mark.parametrize(
    ("model", "old"),
    [(SelfRewardingConfig, "n_candidates"), (InstructionContrastConfig, "candidates")],
)
def test_old_option_names_say_did_you_mean_trls(model, old):
    from rlaif.errors import ConfigError
    from rlaif.feedback.source import validate_source_options

    with pytest.raises(ConfigError, match=rf"unknown key '{old}' \(did you mean 'num_generations'\?\)"):
        validate_source_options({old: 3}, model, "src")
    assert validate_source_options({"num_generations": 3}, model, "src").num_generations == 3
