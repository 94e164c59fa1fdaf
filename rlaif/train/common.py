"""Plumbing shared by the training stages: TRL argument mapping, metrics files, result records, and
the train-then-save sequence of the TRL-backed policy stages (DPO, GRPO, RLOO).

Why one place: every stage must log the same way (``metrics.jsonl``: one JSON object per logging
step, written by the main process only, flushed per line so a crashed run keeps its curve), map our
settings onto transformers' TrainingArguments identically, and leave the same output layout
(``adapter/`` or ``model/`` with tokenizer files, ``result.json``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlaif.errors import ConfigError
from rlaif.files import apply_umask, atomic_write_json
from rlaif.records import PromptRecord, read_jsonl
from rlaif.train.configs import PolicySpec, TrainerSettings
from rlaif.train.models import merge_policy
from rlaif.train.precision import mixed_precision_flags

TENSORBOARD_ENV = "TENSORBOARD_LOGGING_DIR"

# our settings that TrainingArguments spells the same way
_SAME_NAME_SETTINGS = (
    "learning_rate",
    "max_steps",
    "gradient_accumulation_steps",
    "weight_decay",
    "max_grad_norm",
    "seed",
    "gradient_checkpointing",
    "logging_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "lr_scheduler_type",
)


def trainer_kwargs(cfg: TrainerSettings) -> dict[str, Any]:
    """Our shared settings as TrainingArguments keywords; ``cfg.trainer_args`` overrides last."""
    import torch

    kw: dict[str, Any] = {name: getattr(cfg, name) for name in _SAME_NAME_SETTINGS}
    kw.update(
        output_dir=str(Path(cfg.output_dir) / "trainer"),
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        warmup_steps=cfg.warmup_ratio,
        save_strategy="steps" if cfg.save_steps else "no",
        report_to=list(cfg.report_to),
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        **mixed_precision_flags(cfg.precision),
    )
    if cfg.save_steps:
        kw.update(save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit)
    if cfg.deepspeed is not None:
        kw["deepspeed"] = str(cfg.deepspeed)
    if cfg.fsdp is not None:
        kw["fsdp"] = cfg.fsdp
    if cfg.fsdp_config is not None:
        kw["fsdp_config"] = cfg.fsdp_config if isinstance(cfg.fsdp_config, dict) else str(cfg.fsdp_config)
    kw.update(cfg.trainer_args)
    return kw


def make_trl_config(cls, kwargs: dict[str, Any], stage: str):
    """Build a TRL config; its own validation errors become ConfigError naming the stage."""
    try:
        return cls(**kwargs)
    except TypeError as exc:  # unknown keyword from trainer_args
        raise ConfigError(f"{stage}: trainer_args: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{stage}: {exc}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


class MetricsWriter:
    """Append-only ``metrics.jsonl``; a fresh run truncates it, a run resumed from a checkpoint at step
    ``resume_step`` keeps the lines up to that step (the later ones are logged again). Writes nothing
    off the main process. With ``tensorboard_dir`` (our own PPO, which has no transformers callbacks)
    every numeric value also goes to a tensorboard event file there, at the record's ``step``."""

    def __init__(
        self,
        path: str | Path,
        enabled: bool = True,
        resume_step: int = 0,
        tensorboard_dir: Path | None = None,
    ):
        self.path = Path(path)
        self.enabled = enabled
        self._fh = None
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            kept = _lines_up_to(self.path, resume_step) if resume_step else []
            self._fh = open(self.path, "w", encoding="utf-8")
            self._fh.writelines(kept)
            if tensorboard_dir is not None:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(tensorboard_dir))

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        if self._tb is not None:
            step = int(record.get("step", 0))
            for key, value in record.items():
                value = _jsonable(value)
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"train/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def tensorboard_dir(cfg) -> Path | None:
    """Where a stage's tensorboard event files go: ``cfg.logging_dir`` (a run sets it), else
    ``<output_dir>/tensorboard``; None when ``cfg.report_to`` does not name tensorboard."""
    if "tensorboard" not in cfg.report_to:
        return None
    return Path(cfg.logging_dir) if cfg.logging_dir is not None else Path(cfg.output_dir) / "tensorboard"


@contextmanager
def _tensorboard_logging_dir(path: Path | None):
    """transformers' TensorBoardCallback reads its folder from ``TENSORBOARD_LOGGING_DIR`` when the
    trainer is built (TrainingArguments has no logging_dir any more); set only for that moment."""
    if path is None:
        yield
        return
    before = os.environ.get(TENSORBOARD_ENV)
    os.environ[TENSORBOARD_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TENSORBOARD_ENV, None)
        else:
            os.environ[TENSORBOARD_ENV] = before


def _lines_up_to(path: Path, step: int) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError:
        return []
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
        except json.JSONDecodeError:  # a line cut by the kill
            continue
    return kept


RESUME_KEY_FILE = "resume_key.txt"


def resume_checkpoint(args, key: str) -> str | None:
    """The newest complete TRL checkpoint in ``args.output_dir`` made with the same ``key`` (the stage's
    settings and data), or None. Why the key: a checkpoint from other settings or data must not be
    continued; those are removed (main process) and the stage starts from step 0. A checkpoint cut
    short by a kill has no ``trainer_state.json`` (transformers writes it last) and is removed too."""
    if args.save_strategy == "no":
        return None
    folder = Path(args.output_dir)
    key_file = folder / RESUME_KEY_FILE
    same = key_file.is_file() and key_file.read_text(encoding="utf-8") == key
    complete = sorted(
        (d for d in folder.glob("checkpoint-*") if (d / "trainer_state.json").is_file()),
        key=lambda d: int(d.name.rpartition("-")[2]) if d.name.rpartition("-")[2].isdigit() else -1,
    )
    if args.process_index == 0:
        if not same:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for partial in set(folder.glob("checkpoint-*")) - set(complete):
                shutil.rmtree(partial, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        key_file.write_text(key, encoding="utf-8")
    return str(complete[-1]) if same and complete else None


def checkpoint_step(checkpoint: str | None) -> int:
    if checkpoint is None:
        return 0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("global_step", 0))


def resume_key(cfg, data: Any) -> str:
    """A hash of a stage's settings and training data: checkpoints are resumed only under the same key."""
    import hashlib

    blob = json.dumps([cfg.model_dump(mode="json"), data], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


FAULT_ENV = "RLAIF_FAULT_KILL_AT_STEP"


def kill_if_fault_step(step: int) -> None:
    """Fault injection for the resume tests: ``RLAIF_FAULT_KILL_AT_STEP=N`` SIGKILLs this process when
    optimiser step N has ended (before any checkpoint of that step is written), a real mid-stage kill."""
    if os.environ.get(FAULT_ENV) == str(step):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _fault_callback():
    from transformers import TrainerCallback

    class _Fault(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            kill_if_fault_step(state.global_step)

    return _Fault()


def metrics_callback(writer: MetricsWriter, stage: str):
    """A transformers TrainerCallback that copies every log line into ``writer``."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                writer.write({"stage": stage, "step": state.global_step, **logs})

    return _Callback()


def run_logged_trainer(
    build: Callable[[list], Any],
    args,
    stage: str,
    out: Path,
    *,
    callbacks: list | None = None,
    evaluate: bool = False,
    key: str | None = None,
    logging_dir: Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Build a TRL trainer with our metrics callback first (``build(callbacks)``), train it, evaluate
    when asked; ``<out>/metrics.jsonl`` is closed even when training fails. With checkpoints on
    (``save_steps``) and a ``key`` (:func:`resume_key`), training resumes from the newest checkpoint
    made under the same key: weights, optimiser, scheduler, RNG and data position (TRL/transformers'
    ``resume_from_checkpoint``). ``logging_dir``: the tensorboard folder (:func:`tensorboard_dir`: None
    unless ``report_to`` names tensorboard). Returns (trainer, eval metrics)."""
    checkpoint = resume_checkpoint(args, key) if key is not None else None
    if checkpoint is not None and args.process_index == 0:
        print(f"{stage}: resuming from {checkpoint} (step {checkpoint_step(checkpoint)})", file=sys.stderr)
    writer = MetricsWriter(
        Path(out) / "metrics.jsonl", enabled=args.process_index == 0, resume_step=checkpoint_step(checkpoint)
    )
    try:
        fault = [_fault_callback()] if os.environ.get(FAULT_ENV) else []
        with _tensorboard_logging_dir(logging_dir):
            trainer = build([metrics_callback(writer, stage), *(callbacks or []), *fault])
        trainer.train(resume_from_checkpoint=checkpoint)
        eval_metrics = trainer.evaluate() if evaluate else {}
    finally:
        writer.close()
    return trainer, eval_metrics


def save_policy_stage(
    trainer, cfg, tokenizer, *, stage: str, base: Path, counts: dict[str, int], extra: dict[str, Any]
) -> StageResult:
    """Save a TRL-trained policy as ``adapter/`` (LoRA, on ``base``) or ``model/`` and write result.json.

    ``cfg`` needs ``output_dir``, ``lora``, ``save`` and ``save_steps``. Every process takes part in
    the save (DeepSpeed/FSDP gather there); only the main process writes the tokenizer, the merged
    model and result.json, and removes scratch: TRL's training_args.bin, its ``trainer/`` directory
    when nothing resumable was asked for, and the frozen ``ref`` adapter copy of DPO's continue mode.
    """
    out, lora = Path(cfg.output_dir), cfg.lora is not None
    target = out / ("adapter" if lora else "model")
    trainer.save_model(str(target))  # handles DeepSpeed/FSDP gathering; writes on the main process
    trainer.accelerator.wait_for_everyone()
    result = StageResult(
        stage=stage,
        output_dir=out,
        base_model=base if lora else target,
        adapter=target if lora else None,
        metrics_path=out / "metrics.jsonl",
        metrics=last_values(trainer.state.log_history),
        counts={**counts, "steps": trainer.state.global_step, "world_size": trainer.args.world_size},
        extra=extra,
    )
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(target))
        (target / "training_args.bin").unlink(missing_ok=True)
        if lora and cfg.save == "merged":
            result.merged_model = merge_policy(PolicySpec(path=base, adapter=target), out / "model")
        if not cfg.save_steps:  # nothing resumable was written; drop TRL's scratch directory
            shutil.rmtree(out / "trainer", ignore_errors=True)
        if (target / "ref" / "adapter_config.json").is_file():  # TRL's frozen reference copy
            shutil.rmtree(target / "ref")
        apply_umask(target)  # safetensors writes its files 0600
        result.write()
    trainer.accelerator.wait_for_everyone()
    return result


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass
class StageResult:
    """What a training stage produced. ``policy`` is the next stage's starting point."""

    stage: str
    output_dir: Path
    base_model: Path
    adapter: Path | None = None
    merged_model: Path | None = None
    metrics_path: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def policy(self) -> PolicySpec:
        if self.merged_model is not None:
            return PolicySpec(path=self.merged_model)
        return PolicySpec(path=self.base_model, adapter=self.adapter)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return json.loads(json.dumps(data, default=_jsonable))

    def write(self) -> Path:
        path = Path(self.output_dir) / "result.json"
        atomic_write_json(path, self.to_json(), default=_jsonable)
        return path


def last_values(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest value of every key TRL logged (the final summary overrides the step lines)."""
    out: dict[str, Any] = {}
    for entry in log_history:
        out.update({k: _jsonable(v) for k, v in entry.items()})
    return out


ROW_COLUMN = "rlaif_row"  # the dataset column GRPO/RLOO use to find a prompt's metadata


def prompt_rows(records) -> list[dict[str, Any]]:
    """PromptRecords as rows: ``prompt`` messages plus each metadata key as a column for reward functions."""
    rows = []
    for rec in records:
        row = {"prompt": [m.model_dump() for m in rec.messages], "prompt_id": rec.id}
        for key, value in rec.metadata.items():
            if key in ("prompt", "completion", "completions", "prompts", "completion_ids", ROW_COLUMN):
                raise ConfigError(
                    f"prompt {rec.id}: metadata key {key!r} clashes with a reward-function argument"
                )
            row[key] = value
        rows.append(row)
    return rows


def load_prompt_records(paths: list[Path]):
    records = []
    for p in paths:
        records.extend(read_jsonl(p, PromptRecord))
    if not records:
        raise ConfigError(f"no prompts in {', '.join(str(p) for p in paths)}")
    return records
