"""Run one training stage under ``accelerate launch``: several processes, DeepSpeed ZeRO or FSDP.

Why a subprocess and not the stage in-process: data parallelism needs one process per device, which
only a launcher can give; ``accelerate launch`` is the launcher every peer uses, and its config file
(``accelerate config``) already carries DeepSpeed ZeRO stages, FSDP sharding and multi-node addresses,
so they pass through untouched instead of being re-modelled here.

How a caller (the pipeline) uses it, given a stage's validated config ``cfg``::

    if launch.distributed:
        result = run_stage("dpo", cfg, launch, work_dir)
    else:
        result = run_dpo(cfg)

Guarantees:
- the stage runs as ``rlaif train STAGE --config FILE`` in every process, from the stage config
  written to ``work_dir/STAGE.launch.yaml`` (the same validation as a hand-run stage);
- without an accelerate config and without CUDA, the processes join over gloo on the CPU
  (``--multi_gpu`` falls back to torch.distributed on CPU; ``--cpu`` would start one process);
- the processes' output goes to ``work_dir/STAGE.launch.log``; a failed launch raises
  :class:`TrainLaunchError` naming the log and quoting its last lines, never a bare exit status;
- the result is the ``result.json`` the main process wrote, read back as a :class:`StageResult`.

Non-guarantees: only what crosses a YAML file crosses the process boundary: a reward *callable*
passed in Python (not a ``module:function`` reward spec) or in-memory prompts cannot be launched;
engine rollouts (PPO ``rollout: engine``) stay single-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from rlaif.config.run import LaunchSettings  # the run's `train:` block (re-exported here)
from rlaif.errors import RlaifError

STAGES = ("dpo", "sft", "reward-model", "ppo", "grpo", "rloo")  # the `rlaif train` subcommands


class TrainLaunchError(RlaifError):
    """A launched training stage failed (the message names its log)."""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(stage: str, config_path: Path, settings: LaunchSettings) -> list[str]:
    """The ``accelerate launch`` command line that runs ``rlaif train STAGE --config config_path``."""
    if stage not in STAGES:
        raise TrainLaunchError(f"unknown training stage '{stage}' (known: {', '.join(STAGES)})")
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if settings.accelerate_config is not None:
        path = Path(settings.accelerate_config)
        if not path.is_file():
            raise TrainLaunchError(f"train.accelerate_config: file not found: {path}")
        cmd += ["--config_file", str(path)]
    else:
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        if settings.num_processes > 1:
            cmd += ["--multi_gpu"]  # with no CUDA device: torch.distributed over gloo on the CPU
    cmd += ["--num_processes", str(settings.num_processes)]
    cmd += ["--main_process_port", str(settings.main_process_port or _free_port())]
    return cmd + ["-m", "rlaif.cli", "train", stage, "--config", str(config_path)]


def write_stage_config(stage: str, cfg: BaseModel, work_dir: Path) -> Path:
    """The stage config as the YAML a hand-run ``rlaif train`` would read."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{stage}.launch.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    os.replace(tmp, path)
    return path


def run_stage(stage: str, cfg: BaseModel, settings: LaunchSettings, work_dir: Path, env: dict | None = None):
    """Run the stage in ``settings.num_processes`` processes; its :class:`StageResult`."""
    from rlaif.train.common import StageResult

    config_path = write_stage_config(stage, cfg, Path(work_dir))
    cmd = launch_command(stage, config_path, settings)
    log = Path(work_dir) / f"{stage}.launch.log"
    run_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=run_env).returncode
    if code != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise TrainLaunchError(f"{stage} under accelerate launch exited with {code} (log: {log}): {tail}")
    out = Path(cfg.output_dir)  # type: ignore[attr-defined]
    return read_stage_result(out / "result.json", StageResult)


def read_stage_result(path: Path, cls: Any):
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("output_dir", "base_model", "adapter", "merged_model", "metrics_path"):
        if data.get(key) is not None:
            data[key] = Path(data[key])
    return cls(**data)
