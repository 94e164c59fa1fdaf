"""The one strict base and the one validator of every config model (run configs and the trainers').

Guarantees: unknown keys are refused (``extra="forbid"``); :func:`validate_model` turns a pydantic
error into one :class:`~rlaif.errors.ConfigError` line naming the file and the key, with the key the
user probably meant; ``report_to`` trackers are checked when a config is validated, not when the first
trainer starts. Imports no torch, vllm or trl.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rlaif.errors import ConfigError, describe_validation_error


class Strict(BaseModel):
    """The one strict base of every config model (run configs and the trainers' configs)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# Where training and per-round metrics are also logged; each name is the module that must be installed.
TRACKERS = ("tensorboard", "wandb", "trackio")


def check_report_to(names: list[str]) -> list[str]:
    """``report_to`` as transformers takes it, checked now: an unknown tracker or one that is not installed
    is a config error (``rlaif validate`` says so), not a failure when the first trainer starts."""
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"unknown tracker '{name}' (choose from {', '.join(TRACKERS)})")
        if importlib.util.find_spec(name) is None:
            raise ValueError(f"'{name}' is not installed (pip install {name})")
    return list(dict.fromkeys(names))


def validate_model(model: type[BaseModel], data: Any, file: str = "config", prefix: str = "") -> Any:
    """The one validator of config models: one error line naming ``file`` and the key (``prefix``: where
    the block sits in the file, e.g. ``dpo.``), an unknown key with the key the user probably meant."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = describe_validation_error(exc, limit=1, prefix=prefix, config_keys=True, model=model)
        raise ConfigError(f"{file}: {problem}") from None
