"""Mid-stage checkpoints of our PPO loop: a killed PPO stage resumes at its last checkpoint.

What a checkpoint holds (everything the next iteration depends on): the actor's and the critic's
trainable weights (the LoRA adapter, or every weight with full fine-tuning), both AdamW states, the
KL controller, the reward normaliser's running moments, the prompt order and its RNG, the torch
(CPU and CUDA) and Python RNG states, the step counter and the metrics of the steps done. The frozen
reference is not saved: it is rebuilt from the starting policy exactly as before.

Layout: ``<output_dir>/checkpoints/step-NNNNNN/`` with ``state.pt`` (main process) and ``rng-R.pt``
(one per process). A checkpoint is written under a temporary name and renamed when complete, so a
kill while saving leaves the previous one intact; only the newest ``save_total_limit`` are kept.

Guarantees: resuming from step N and running to the end gives the same weights as an uninterrupted
run on the same machine (same seed; CPU is bit-exact in our tests, GPU kernels may differ by float
rounding); a checkpoint is resumed only when the stage's settings, prompts and process count are
those it was made with (its key), otherwise the stage starts from step 0 and the old checkpoints are
removed. Non-guarantees: rollouts from a vLLM engine are seeded from the restored RNG, but vLLM's own
sampling is only as reproducible as vLLM is (see :mod:`rlaif.engines.vllm`).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

CHECKPOINTS = "checkpoints"
STATE = "state.pt"


def _folder(trainer) -> Path:
    return Path(trainer.out) / CHECKPOINTS


def _trainable(model) -> dict[str, Any]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _rng_state(trainer, key: str) -> dict[str, Any]:
    import torch

    return {
        "key": key,
        "order": list(trainer._order),
        "prompt_rng": trainer.rng.getstate(),
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "prompts_truncated": trainer.prompts_truncated,
    }


def _complete(folder: Path) -> list[Path]:
    found = [d for d in folder.glob("step-*") if (d / STATE).is_file() and d.name[5:].isdigit()]
    return sorted(found, key=lambda d: int(d.name[5:]))


def save(trainer, step: int, history: list[dict[str, Any]], key: str) -> Path:
    """Write the checkpoint after ``step`` (every process calls this)."""
    import torch

    acc, cfg, folder = trainer.accelerator, trainer.cfg, _folder(trainer)
    final, tmp = folder / f"step-{step:06d}", folder / f".step-{step:06d}.tmp"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save(_rng_state(trainer, key), tmp / f"rng-{acc.process_index}.pt")
    if acc.is_main_process:
        state = {
            "key": key,
            "step": step,
            "history": history,
            "actor": _trainable(acc.unwrap_model(trainer.actor)),
            "critic": _trainable(acc.unwrap_model(trainer.critic)),
            "actor_opt": trainer.actor_opt.state_dict(),
            "critic_opt": trainer.critic_opt.state_dict(),
            "kl_ctl": dict(vars(trainer.kl_ctl)),
            "moments": dict(vars(trainer.moments)) if trainer.moments is not None else None,
        }
        torch.save(state, tmp / STATE)
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in _complete(folder)[: -cfg.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def resume(trainer, key: str) -> tuple[int, list[dict[str, Any]]]:
    """Restore the newest checkpoint made under ``key``; returns (steps done, their metrics), or
    (0, []) when there is none (mismatched and partial checkpoints are then removed)."""
    import torch

    acc, folder = trainer.accelerator, _folder(trainer)
    done = _complete(folder)
    newest = done[-1] if done else None
    rng_file = newest / f"rng-{acc.process_index}.pt" if newest else None
    rng = torch.load(rng_file, weights_only=False) if rng_file and rng_file.is_file() else None
    if rng is None or rng["key"] != key:
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(folder, ignore_errors=True)
        acc.wait_for_everyone()
        return 0, []
    state = torch.load(newest / STATE, weights_only=False, map_location="cpu")
    for model, saved in ((trainer.actor, state["actor"]), (trainer.critic, state["critic"])):
        missing = set(saved) - set(_trainable(acc.unwrap_model(model)))
        if missing:  # pragma: no cover - same key means the same model shapes
            raise RuntimeError(f"PPO checkpoint {newest} does not fit the model ({sorted(missing)[:3]})")
        acc.unwrap_model(model).load_state_dict(saved, strict=False)
    trainer.actor_opt.load_state_dict(state["actor_opt"])
    trainer.critic_opt.load_state_dict(state["critic_opt"])
    vars(trainer.kl_ctl).update(state["kl_ctl"])
    if state["moments"] is not None:
        vars(trainer.moments).update(state["moments"])
    trainer._order = list(rng["order"])
    trainer.rng.setstate(rng["prompt_rng"])
    trainer.prompts_truncated = rng["prompts_truncated"]
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"]), list(state["history"])
