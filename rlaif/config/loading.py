"""Loading a run config: YAML file, ``key.sub=value`` overrides, ``${SHARED_DATA}``, validation.

Guarantees: overrides are applied before validation and parsed as YAML scalars (``rounds=3``,
``dpo.beta=0.2``, ``final.kind=none``); ``${SHARED_DATA}`` expands to the shared data folder
(``$RLAIF_SHARED_DATA`` or ``../shared/data`` beside the project); every error is one line naming the
file and the key. Relative paths stay relative to the working directory (runs start from the project
root).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from rlaif.config.base import validate_model
from rlaif.config.run import RunConfig
from rlaif.errors import ConfigError
from rlaif.files import load_yaml_mapping


def shared_data_dir() -> Path:
    env = os.environ.get("RLAIF_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def _set_dotted(data: dict, dotted: str, value: Any, file: str) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        if node.get(key) is None:
            node[key] = {}
        if not isinstance(node[key], dict):
            raise ConfigError(f"{file}: override '{dotted}': '{key}' is not a mapping")
        node = node[key]
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str], file: str) -> dict:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': value is not valid YAML ({exc})") from None
        _set_dotted(data, key.strip(), value, file)
    return data


def _expand(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, base) for v in value]
    if isinstance(value, str) and "${SHARED_DATA}" in value:
        return value.replace("${SHARED_DATA}", str(shared_data_dir()))
    return value


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override, validate; every error names the file and the key."""
    path = Path(path)
    data = load_yaml_mapping(path)
    data = apply_overrides(data, overrides or [], str(path))
    data = _expand(data, path.parent)
    cfg = validate_model(RunConfig, data, str(path))
    return cfg.model_copy(update={"source_file": str(path)})
