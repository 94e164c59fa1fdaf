"""The run resolved once (rlaif.pipeline.resolve): every option block as its stage's typed model, run-time
values filled in per stage without validating again, and what the run decides refused in the config."""

from __future__ import annotations

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


def test_every_block_is_its_stages_typed_model_of_what_the_user_sets(config):
    from rlaif.train.configs import DPOOptions, PPOOptions

    run = resolve(config(final={"kind": "ppo", "options": {"rollout": "hf"}}))
    fb, pairs, dpo, final = (
        run.block(k) for k in ("feedback.options", "pairs.options", "dpo", "final.options")
    )
    assert isinstance(fb, RLCDConfig) and fb.max_retries == 2
    assert isinstance(pairs, PairFilterConfig) and pairs.min_margin == 0.5
    assert type(dpo) is DPOOptions and dpo.beta == 0.2 and dpo.seed == 5
    assert dpo.output_dir == run.config.run_dir() / "round_1" / "train"
    assert type(final) is PPOOptions and final.rollout == "hf"
    with pytest.raises(ConfigError, match="'final.options' was not resolved"):
        resolve(config()).block("final.options")


def test_no_input_is_invented_to_validate_a_trainer_block(config):
    """The policy and data files a trainer takes are the run's to give at stage time: a resolved block
    holds none (no placeholder path for files that do not exist yet)."""
    run = resolve(
        config(
            final={"kind": "grpo"},
            sft={"feedback": {"source": "sl_cai"}, "options": {"max_steps": 1}},
        )
    )
    for key, inputs in (("dpo", ("policy", "pairs")), ("final.options", ("policy", "prompts"))):
        assert not any(hasattr(run.block(key), name) for name in inputs), key
    assert not any(hasattr(run.block("sft.options"), name) for name in ("policy", "records"))


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"dpo": {"pairs": ["mine.jsonl"]}}, "dpo.pairs"),
        ({"dpo": {"policy": {"path": "elsewhere"}}}, "dpo.policy"),
        ({"final": {"kind": "ppo", "options": {"prompts": ["p.jsonl"]}}}, "final.options.prompts"),
        (
            {"sft": {"feedback": {"source": "sl_cai"}, "options": {"records": ["r.jsonl"]}}},
            "sft.options.records",
        ),
    ],
)
def test_a_trainer_input_the_run_decides_is_refused_not_overwritten(config, changes, key):
    with pytest.raises(ConfigError, match=f"'{key}' is decided by the run"):
        resolve(config(**changes))


@pytest.mark.parametrize(
    ("kind", "reward", "options"),
    [
        ("ppo", "reward_model", {"reward": {"function": "my_rewards:length_reward"}}),
        ("ppo", "judge", {"reward": {"function": "my_rewards:length_reward"}}),
        ("grpo", "reward_model", {"rewards": [{"function": "my_rewards:length_reward"}]}),
        ("rloo", "sandbox", {"rewards": [{"function": "my_rewards:length_reward"}]}),
        ("grpo", "verifier", {"reward_weights": []}),
    ],
)
def test_the_final_rounds_reward_keys_are_the_runs_whatever_final_reward_is(config, kind, reward, options):
    """A reward model the run trains replaced the user's ``reward``/``rewards``, and PPO ignored its
    ``reward`` for the run's sandbox/verifier/judge function: both silently. Refused up front, as
    ``Runner(cfg)`` and ``rlaif validate`` compile the run, with one line naming the key."""
    from rlaif.pipeline.runner import Runner

    key = next(iter(options))
    cfg = config(final={"kind": kind, "reward": reward, "options": options})
    with pytest.raises(ConfigError) as err:
        Runner(cfg)
    message = str(err.value)
    assert f"'final.options.{key}' is decided by the run" in message and "\n" not in message
    assert f"final.reward={reward}" in message and "remove it" in message
    resolve(config(final={"kind": kind, "reward": reward}))  # without the key the block resolves


def test_a_training_stage_that_cannot_start_from_the_runs_policy_is_refused_up_front(run_config, tmp_path):
    """Full fine-tuning of a starting adapter is refused before any stage, for a DPO round the run
    executes; without rounds there is nothing to refuse."""
    from rlaif.pipeline.compile import compile_run

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_text("x")
    policy = {"path": run_config.base()["policy"]["path"], "adapter": str(adapter)}
    with pytest.raises(
        ConfigError, match="'dpo': full fine-tuning \\(lora: null\\) of a policy with an adapter"
    ):
        compile_run(run_config(policy=policy, dpo={"lora": None}))
    compile_run(run_config(policy=policy, dpo={"lora": None}, rounds=0))


def test_run_time_values_fill_defaults_and_forced_keys_without_validating_again(config, tmp_path):
    from rlaif.train.configs import DPOConfig, PolicySpec

    run = resolve(config(dpo={"beta": 0.2, "seed": 77}))
    policy = PolicySpec(path=tmp_path / "m2", adapter=tmp_path / "a1")
    round_2 = run.runtime(
        "dpo",
        defaults={"seed": 6, "output_dir": tmp_path / "r2"},
        forced={"policy": policy, "pairs": [tmp_path]},
    )
    assert isinstance(round_2, DPOConfig)  # the trainer's config: the user's options + the run's inputs
    assert round_2.seed == 77 and round_2.beta == 0.2  # the user's value wins over a stage default
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


def test_a_stage_config_written_for_accelerate_launch_validates_back_as_the_trainer_config(config, tmp_path):
    """Under ``accelerate launch`` each process reads the stage config back with ``rlaif train``'s
    validator: the config built at stage time (not validated) must be one it accepts unchanged."""
    from rlaif.commands.train import load_stage_config
    from rlaif.train.configs import PolicySpec
    from rlaif.train.launch import write_stage_config

    run = resolve(config(final={"kind": "grpo", "options": {"num_generations": 2}}))
    policy = PolicySpec(path=tmp_path / "m")
    for stage, key, inputs in (
        ("dpo", "dpo", {"pairs": [tmp_path / "pairs.jsonl"]}),
        ("grpo", "final.options", {"prompts": [tmp_path / "prompts.jsonl"]}),
    ):
        built = run.runtime(
            key, defaults={"output_dir": tmp_path / stage}, forced={"policy": policy, **inputs}
        )
        path = write_stage_config(stage, built, tmp_path / stage)
        read_back = load_stage_config(stage, path, [])
        assert type(read_back) is type(built) and read_back.model_dump() == built.model_dump()
