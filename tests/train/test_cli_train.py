"""``rlaif train ...`` end to end in-process: YAML + --set overrides, one-line errors, option listing."""

from __future__ import annotations

import json

import yaml

from rlaif.cli import main
from rlaif.train.common import read_metrics

REWARD_MODULE = """
def length_reward(prompts, completions, completion_ids, scale=1.0, **kw):
    return [scale * len(ids) for ids in completion_ids]
"""


def _last_json(text: str) -> dict:
    return json.loads(text[text.index("{\n") :])


def test_train_dpo_from_yaml_with_overrides(tiny_model_dir, dpo_pairs_file, tmp_path, capsys):
    config = tmp_path / "dpo.yaml"
    config.write_text(
        yaml.safe_dump({"policy": {"path": str(tiny_model_dir)}, "pairs": [str(dpo_pairs_file)]})
    )
    code = main(["train", "dpo", "-c", str(config), "--set", f"output_dir={tmp_path / 'out'}", "--set", "max_steps=1",
                 "--set", "loss_type=hinge", "--set", "lora.r=4"])  # fmt: skip
    assert code == 0
    result = _last_json(capsys.readouterr().out)
    assert result["counts"]["steps"] == 1 and result["extra"]["loss_type"] == ["hinge"]
    assert json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())["r"] == 4


def test_train_ppo_with_a_reward_function_by_name(
    tiny_model_dir, prompts_file, tmp_path, capsys, monkeypatch
):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "ppo.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(tmp_path / "ppo"),
                "policy": {"path": str(tiny_model_dir)},
                "prompts": [str(prompts_file)],
                "reward": {"function": "my_rewards:length_reward", "kwargs": {"scale": 0.5}},
                "max_steps": 1,
                "batch_size": 2,
                "minibatch_size": 2,
                "ppo_epochs": 1,
                "max_completion_length": 4,
                "save_critic": False,
            }
        )
    )
    assert main(["train", "ppo", "--config", str(config)]) == 0
    (line,) = read_metrics(tmp_path / "ppo" / "metrics.jsonl")
    assert line["score"] == 0.5 * line["response_length"]  # the named function, with its bound kwargs


def test_bad_config_is_one_error_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("output_dir: o\npolicy: {path: p}\npairs: [a.jsonl]\nbetta: 0.1\n")
    assert main(["train", "dpo", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "betta" in err[0] and "bad.yaml" in err[0]
    assert main(["train", "ppo", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_missing_model_dir_is_a_config_error(dpo_pairs_file, tmp_path, capsys):
    code = main(["train", "dpo", "--set", f"output_dir={tmp_path}", "--set", f"policy.path={tmp_path / 'nope'}",
                 "--set", f"pairs=[{dpo_pairs_file}]"])  # fmt: skip
    assert code == 2
    assert "policy.path" in capsys.readouterr().err


def test_options_lists_nested_keys_with_help(capsys):
    assert main(["train", "options", "ppo"]) == 0
    out = capsys.readouterr().out
    assert "kl_coef [0.05]:" in out and "lora.r [" in out and "reward.function [" in out
    assert main(["train", "options", "nope"]) == 2
