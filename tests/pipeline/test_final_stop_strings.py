"""The final round's stop strings follow its reward: a reward that runs code stops each rollout at the end
of its first code block, as the feedback stage samples code candidates; a user's setting wins."""

from __future__ import annotations

import pytest

from rlaif.code.jobs import CODE_STOP
from rlaif.errors import ConfigError
from rlaif.pipeline.compile import resolve

CODE_RUN = {"prompts": {"kind": "demo_code"}, "feedback": {"source": "rlcf"}}


def _stops(run_config, kind="grpo", reward="sandbox", options=None, **changes):
    final = {"kind": kind, "reward": reward, "options": options or {}}
    return resolve(run_config(final=final, **changes)).block("final.options").stop_strings


@pytest.mark.parametrize("kind", ["grpo", "rloo", "ppo"])
def test_a_sandbox_reward_stops_at_the_end_of_the_code_block(run_config, kind):
    assert _stops(run_config, kind, **CODE_RUN) == list(CODE_STOP)
    assert _stops(run_config, kind, "verifier", **CODE_RUN) == list(CODE_STOP)  # the sandbox too


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
def test_the_users_stop_strings_win_and_an_empty_list_turns_them_off(run_config, kind):
    assert _stops(run_config, kind, options={"stop_strings": ["\n\n"]}, **CODE_RUN) == ["\n\n"]
    assert _stops(run_config, kind, options={"stop_strings": []}, **CODE_RUN) == []
    assert _stops(run_config, kind, options={"stop_strings": None}, **CODE_RUN) is None


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
def test_rewards_that_do_not_run_code_get_no_default(run_config, kind):
    assert _stops(run_config, kind, reward="judge", judge={"kind": "score"}) is None
    assert _stops(run_config, kind, reward="verifier") is None  # instruction prompts: all text is read


def test_the_default_meets_the_trl_options_it_does_not_cover_at_resolve_time(run_config):
    options = {"trainer_args": {"use_vllm": True}}
    with pytest.raises(ConfigError, match="final.options.*stop_strings works with TRL's transformers"):
        _stops(run_config, options=options, **CODE_RUN)
    assert _stops(run_config, options={**options, "stop_strings": []}, **CODE_RUN) == []


def test_a_code_runs_final_grpo_round_samples_with_the_code_stop(tmp_path, tiny_model_dir):
    """The wiring, for real: the run's final GRPO round on code problems trains with the stop on (the
    stop ratio is logged only then; the random tiny model never closes a code block, so it is 0)."""
    from rlaif.config import RunConfig
    from rlaif.pipeline.runner import Runner
    from rlaif.train.common import read_metrics

    cfg = RunConfig.model_validate(
        {
            "name": "code_final",
            "output_dir": str(tmp_path / "runs"),
            "policy": {"path": str(tiny_model_dir)},
            "prompts": {"kind": "demo_code", "split": "train", "limit": 2},
            "feedback": {"source": "rlcf"},
            "rounds": 0,
            "final": {
                "kind": "grpo",
                "reward": "sandbox",
                "options": {"num_generations": 2, "per_device_train_batch_size": 4, "max_steps": 1,
                            "max_completion_length": 8},
            },
        }
    )  # fmt: skip
    runner = Runner(cfg)
    runner.run()
    (line,) = [m for m in read_metrics(cfg.run_dir() / "final" / "train" / "metrics.jsonl") if "reward" in m]
    assert line["completions/stopped_ratio"] == 0.0 and line["completions/clipped_ratio"] > 0
