"""Stage configs: help text on every field, unknown keys refused, errors naming the field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from rlaif.config.base import validate_model
from rlaif.errors import ConfigError, RlaifError, suggest_key
from rlaif.train import configs as c
from rlaif.train.sft import SFTConfig

STAGE_MODELS = [c.DPOConfig, c.RewardModelConfig, c.PPOConfig, c.GRPOConfig, c.RLOOConfig, SFTConfig]


def _walk(model: type[BaseModel], seen: set) -> list[tuple[str, str]]:
    missing = []
    if model in seen:
        return missing
    seen.add(model)
    for name, field in model.model_fields.items():
        if not (field.description or "").strip():
            missing.append((model.__name__, name))
        for arg in getattr(field.annotation, "__args__", (field.annotation,)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                missing += _walk(arg, seen)
    return missing


@pytest.mark.parametrize("model", STAGE_MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_description(model):
    assert _walk(model, set()) == []


@pytest.mark.parametrize("model", STAGE_MODELS, ids=lambda m: m.__name__)
def test_unknown_keys_are_errors(model):
    with pytest.raises(ConfigError, match="no_such_key"):
        validate_model(model, {"no_such_key": 1}, "cfg.yaml")


def test_error_names_source_and_nested_field():
    data = {"output_dir": "o", "policy": {"path": "p", "adaptr": "x"}, "pairs": ["a.jsonl"]}
    with pytest.raises(ConfigError) as err:
        validate_model(c.DPOConfig, data, "round1.yaml")
    assert "round1.yaml" in str(err.value) and "policy.adaptr" in str(err.value)
    assert isinstance(err.value, RlaifError)


def test_dpo_loss_types_and_consistency():
    base = {"output_dir": "o", "policy": {"path": "p"}, "pairs": ["a.jsonl"]}
    assert validate_model(c.DPOConfig, {**base, "loss_type": "ipo"}).loss_type == ["ipo"]
    with pytest.raises(ConfigError, match="unknown DPO loss"):
        validate_model(c.DPOConfig, {**base, "loss_type": ["sigmoid", "sigmod"]})
    with pytest.raises(ConfigError, match="sft_model"):
        validate_model(c.DPOConfig, {**base, "reference": "sft"})
    with pytest.raises(ConfigError, match="loss_weights"):
        validate_model(c.DPOConfig, {**base, "loss_type": ["sigmoid", "ipo"], "loss_weights": [1.0]})
    with pytest.raises(ConfigError, match="merge it first"):
        validate_model(c.DPOConfig, {**base, "policy": {"path": "p", "adapter": "a"}, "lora": None})
    with pytest.raises(ConfigError, match="pairs"):
        validate_model(c.DPOConfig, {**base, "pairs": []})


def test_lora_defaults_are_vllm_servable():
    lora = c.LoraSettings()
    assert lora.r <= 16 and "lm_head" not in lora.target_modules
    with pytest.raises(ConfigError, match="lm_head"):
        validate_model(c.LoraSettings, {"target_modules": ["q_proj", "lm_head"]})


def test_reward_spec_needs_exactly_one_source():
    assert validate_model(c.RewardSpec, {"function": "pkg.mod:fn"}).function == "pkg.mod:fn"
    with pytest.raises(ConfigError, match="exactly one"):
        validate_model(c.RewardSpec, {})
    with pytest.raises(ConfigError, match="exactly one"):
        validate_model(c.RewardSpec, {"function": "a:b", "reward_model": "rm"})
    with pytest.raises(ConfigError, match="package.module:function"):
        validate_model(c.RewardSpec, {"function": "no_colon"})


def test_ppo_consistency_rules():
    base = {"output_dir": "o", "policy": {"path": "p"}}
    assert validate_model(c.PPOConfig, base).gamma == 1.0  # DESIGN: gamma 1, lambda 0.95, clip 0.2
    assert validate_model(c.PPOConfig, base).lam == 0.95
    with pytest.raises(ConfigError, match="ptx_data"):
        validate_model(c.PPOConfig, {**base, "ptx_coef": 0.1})
    with pytest.raises(ConfigError, match="rollout='engine'"):
        validate_model(c.PPOConfig, {**base, "rollout": "engine", "lora": None})


def test_reward_model_margin_and_soft_labels_are_exclusive():
    base = {"output_dir": "o", "model": "m", "pairs": ["a.jsonl"]}
    with pytest.raises(ConfigError, match="use_margin"):
        validate_model(c.RewardModelConfig, {**base, "use_margin": True})
    assert validate_model(c.RewardModelConfig, {**base, "use_margin": True, "soft_labels": False}).use_margin


def test_every_trainer_shares_the_base_in_trls_words_and_old_ppo_keys_name_the_new_ones():
    shared = set(c.TrainerBase.model_fields)
    assert {"max_steps", "logging_steps", "learning_rate", "seed"} <= shared
    for model in STAGE_MODELS:
        assert issubclass(model, c.TrainerBase) and shared <= set(model.model_fields), model.__name__
    for old, new in c.PPOConfig.renamed_keys.items():
        assert new in c.PPOConfig.model_fields and old not in c.PPOConfig.model_fields
        assert suggest_key(c.PPOConfig, (old,)) == new
    assert {"num_generations", "max_completion_length"} <= set(c.GRPOConfig.model_fields)
