"""A TrainerCallback that shows training progress: optimiser steps done, of how many, and the ETA.

Why: transformers' own bar is off (``disable_tqdm`` keeps logs clean) and its per-step log dicts are
not a progress display. This callback drives :class:`rlaif.progress.StepProgress` from the trainer's
state, on the main process only, and shows the latest loss and the training throughput (tok/s, from
the cumulative ``num_tokens`` TRL's DPO, SFT, GRPO and RLOO trainers log) next to the count.

Under the quiet ``rlaif`` CLI (``RLAIF_QUIET=1``, set unless ``-v``) it also mutes transformers'
PrinterCallback, which prints every log dict (the values are in ``metrics.jsonl``, and the progress
line shows the loss); it is muted for the rest of that process, for every trainer.

Guarantees: never changes training (it only reads ``state``). Non-guarantees: the total is the
trainer's ``max_steps`` as known at ``on_train_begin``.
"""

from __future__ import annotations

import os
import time

from transformers import TrainerCallback

from rlaif.progress import StepProgress, tokens_per_s


def _mute_log_dict_printer() -> None:
    from transformers import trainer_callback

    trainer_callback.PrinterCallback.on_log = lambda self, args, state, control, logs=None, **kw: None


class TrainingProgress(TrainerCallback):
    def __init__(self, description: str = "training"):
        if os.environ.get("RLAIF_QUIET") == "1":
            _mute_log_dict_printer()
        self.description = description
        self._progress: StepProgress | None = None
        self._seen = 0
        self._note = ""
        self._tokens_at_start: tuple[float, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._progress = StepProgress(self.description, total=state.max_steps, unit="steps")
            self._progress.__enter__()
            self._seen = state.global_step
            self._tokens_at_start = (0.0, self._progress.start)
            if state.global_step:  # resumed from a checkpoint: its tokens are not this run's
                self._progress.advance(state.global_step, cached=True)
                self._tokens_at_start = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        notes = [f"loss {float(logs['loss']):.4f}"] if "loss" in logs else []
        if "num_tokens" in logs and self._progress is not None:  # TRL: tokens seen so far, cumulative
            if self._tokens_at_start is None:  # resumed: a rate from the next log on
                self._tokens_at_start = (float(logs["num_tokens"]), time.monotonic())
            else:
                tokens0, t0 = self._tokens_at_start
                notes.append(tokens_per_s(float(logs["num_tokens"]) - tokens0, time.monotonic() - t0))
        if notes:
            self._note = ", ".join(notes)

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None and state.global_step > self._seen:
            self._progress.advance(state.global_step - self._seen, note=self._note)
            self._seen = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None
