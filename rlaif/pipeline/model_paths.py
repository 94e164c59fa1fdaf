"""Every model and adapter path of a run config, checked before any stage runs (``rlaif validate``).

Why: a missing judge model folder was found only after round 0's evaluation, a mistyped relative path
passed as a model-hub name, and a folder without ``config.json`` passed; each wasted a run's time.

Rules, per path (relative paths are taken from the current directory, as the stages do):
- it *looks local* when it starts with ``/``, ``.`` or ``~``, has more than one ``/``, names no
  ``org/name`` pair, or its first part is an existing folder here (``models/x`` with a ``models/``
  folder); then it must exist, and a model folder must hold ``config.json`` (an adapter folder
  ``adapter_config.json``);
- anything else is an ``org/name`` model-hub name. It is accepted only where the model is loaded by
  the vLLM engine alone (a policy that is never trained, a judge), which can download it, and a note
  says so; with ``HF_HUB_OFFLINE`` set, or where a stage trains or loads it with transformers from
  local folders only (the policy of a run with training rounds, reward and reference models), it is an
  error.

Non-guarantees: the files inside a model folder (weights, tokenizer) are not read; a hub name is not
looked up (no network here).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from rlaif.config import RunConfig
from rlaif.errors import ConfigError

_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def looks_local(value: str) -> bool:
    if value.startswith(("/", ".", "~")) or not _HUB_NAME.match(value):
        return True
    return Path(value.split("/")[0]).is_dir()


def _paths(cfg: RunConfig) -> list[tuple[str, str, str, bool]]:
    """(key, value, 'model' or 'adapter', engine-only) for every model path the run will load."""
    trains = cfg.rounds > 0 or cfg.final.kind != "none"
    out: list[tuple[str, str, str, bool]] = []
    if not cfg.policy.build_tiny:
        out.append(("policy.path", cfg.policy.path, "model", not trains))
    if cfg.policy.adapter:
        out.append(("policy.adapter", cfg.policy.adapter, "adapter", False))
    if cfg.engine.kind == "vllm" and cfg.engine.model:
        out.append(("engine.model", cfg.engine.model, "model", True))
    judge = cfg.judge
    if judge.model not in ("policy", "openai") and (judge.engine or cfg.engine).kind == "vllm":
        out.append(("judge.model", judge.model, "model", True))
    dpo: dict[str, Any] = cfg.dpo or {}
    if dpo.get("sft_model") and dpo.get("reference") == "sft":
        out.append(("dpo.sft_model", str(dpo["sft_model"]), "model", False))
    options = cfg.final.options or {}
    reward = options.get("reward") if isinstance(options.get("reward"), dict) else {}
    for key, value in (("reward.reward_model", reward.get("reward_model")), ("critic_model", options.get("critic_model"))):  # fmt: skip
        if value and cfg.final.kind != "none":
            out.append((f"final.options.{key}", str(value), "model", False))
    return out


def _check_local(key: str, value: str, kind: str) -> None:
    path = Path(value).expanduser()
    marker = "config.json" if kind == "model" else "adapter_config.json"
    what = "model" if kind == "model" else "LoRA adapter"
    if not path.exists():
        raise ConfigError(f"'{key}': {what} folder not found: {value} (looked in {path.absolute()})")
    if not (path / marker).is_file():
        raise ConfigError(f"'{key}': {value} is not a {what} folder (no {marker})")


def check_model_paths(cfg: RunConfig) -> list[str]:
    """Raise :class:`ConfigError` naming the file and key for a bad path; returns the notes printed
    (to stderr) about hub names accepted."""
    where = cfg.source_file or "config"
    notes = []
    for key, value, kind, engine_only in _paths(cfg):
        try:
            if looks_local(value) or kind == "adapter":
                _check_local(key, value, kind)
            elif not engine_only:
                raise ConfigError(
                    f"'{key}': {value} is not a local folder, and this model is loaded for training from "
                    "local folders only (no model hub); give the path of a model folder"
                )
            elif os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
                raise ConfigError(
                    f"'{key}': {value} is not a local folder, and vLLM cannot download it as a hub name "
                    "(HF_HUB_OFFLINE is set); give the path of a model folder"
                )
            else:
                notes.append(
                    f"note: '{key}': {value} is not a local folder; taken as a model-hub name, which vLLM "
                    "downloads when its engine starts (needs network access)"
                )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    for note in notes:
        print(note, file=sys.stderr)
    return notes
