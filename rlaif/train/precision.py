"""Precision policy of every training stage: fp32 master weights, bf16 only through autocast.

Guarantees:
- a model that is trained (full fine-tuning, LoRA base and adapter, reward model, PPO actor and
  critic) is loaded in fp32 whatever ``precision`` says; ``bf16`` / ``fp16`` (and ``auto`` on a GPU
  with bf16) mean mixed precision - TRL's ``bf16=True`` or accelerate's ``mixed_precision`` - so
  optimiser updates are applied to fp32 weights and checkpoints are saved in fp32;
- only a model that is never updated may be held in half precision (:func:`frozen_dtype`);
- ``auto`` is resolved in one place (:func:`resolve_precision`), so running ``precision: bf16`` on a
  CPU exercises the same code path that ``auto`` takes on a GPU;
- :func:`fresh_accelerator` gives our own trainers (PPO) an ``Accelerator`` with the precision they
  ask for even when an earlier stage in the same process (DPO through TRL) configured another one.

Non-guarantees: fp16 is passed through to transformers (loss scaling is theirs) and is not tested;
fp32 master weights double the memory of a bf16 load (no 8-bit or bf16-weight optimisers here).
"""

from __future__ import annotations

from rlaif.errors import ConfigError

_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` on a GPU that supports it, else ``fp32``; other values unchanged."""
    import torch

    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in _DTYPE_NAMES:
        raise ConfigError(f"precision: expected auto, fp32, bf16 or fp16, got {precision!r}")
    return precision


def trainable_dtype(precision: str):
    """fp32 whatever the precision (validated): the dtype to load any model that will be trained.

    Why: AdamW updates at learning rates like 1e-6 are below bf16's resolution (8 mantissa bits), so
    bf16 weights would round most updates away - and the saved checkpoint would be bf16.
    """
    import torch

    resolve_precision(precision)
    return torch.float32


def frozen_dtype(precision: str):
    """A never-updated model (a fixed DPO reference): the run's half precision under mixed precision,
    fp32 otherwise - it is only ever read under that autocast, so fp32 weights would buy nothing."""
    import torch

    return getattr(torch, _DTYPE_NAMES[resolve_precision(precision)])


def mixed_precision_flags(precision: str) -> dict[str, bool]:
    """TrainingArguments flags; set explicitly because TRL defaults bf16=True even on CPU."""
    resolved = resolve_precision(precision)
    return {"bf16": resolved == "bf16", "fp16": resolved == "fp16"}


def accelerate_mixed_precision(precision: str) -> str:
    """The same choice in accelerate's words: ``no``, ``bf16`` or ``fp16``."""
    resolved = resolve_precision(precision)
    return "no" if resolved == "fp32" else resolved


def fresh_accelerator(precision: str, **kwargs):
    """An ``Accelerator`` with this run's mixed precision, whatever an earlier stage configured.

    accelerate keeps one process-wide ``AcceleratorState`` and raises "AcceleratorState has already
    been initialized" when a second Accelerator asks for another mixed precision (the pipeline runs
    DPO - whose TrainingArguments set up the state - then PPO in one process). transformers'
    TrainingArguments resets that state for every trainer; we do the same, but keep the
    ``PartialState`` (process group and device), which does not depend on the precision.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=accelerate_mixed_precision(precision), **kwargs)
