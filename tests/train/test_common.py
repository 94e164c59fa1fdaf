"""The train-then-save sequence shared by DPO, GRPO/RLOO and the reward model, with a test double.

The real stages run it in test_dpo.py, test_grpo.py and test_reward_model.py; these tests pin the
parts those runs do not look at: what is cleaned up, what is counted, and that metrics.jsonl is
closed when training fails.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rlaif.train.common import read_metrics, run_logged_trainer, save_policy_stage


class FakeTrainer:
    """Just enough of a transformers Trainer: saves files like TRL does and logs through callbacks."""

    def __init__(self, callbacks, *, fail: bool = False):
        self.callbacks = callbacks
        self.fail = fail
        self.args = SimpleNamespace(world_size=1, process_index=0)
        self.state = SimpleNamespace(
            global_step=3, log_history=[{"loss": 1.0}, {"loss": 0.5, "train_runtime": 2.0}]
        )
        self.accelerator = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)
        self.evaluated = False

    def train(self, resume_from_checkpoint=None):
        state = SimpleNamespace(is_world_process_zero=True, global_step=1)
        for cb in self.callbacks:
            cb.on_log(None, state, None, logs={"loss": 1.0})
        if self.fail:
            raise RuntimeError("out of memory")

    def evaluate(self):
        self.evaluated = True
        return {"eval_accuracy": 0.75}

    def save_model(self, path):
        from pathlib import Path

        target = Path(path)
        (target / "ref").mkdir(parents=True)
        (target / "adapter_config.json").write_text("{}")
        (target / "ref" / "adapter_config.json").write_text("{}")
        (target / "training_args.bin").write_bytes(b"x")
        (target.parent / "trainer").mkdir(exist_ok=True)


def test_run_logged_trainer_logs_evaluates_and_closes_on_failure(tmp_path):
    args = SimpleNamespace(process_index=0)
    trainer, metrics = run_logged_trainer(
        lambda cbs: FakeTrainer(cbs), args, "dpo", tmp_path, callbacks=[], evaluate=True
    )
    assert trainer.evaluated and metrics == {"eval_accuracy": 0.75}
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"stage": "dpo", "step": 1, "loss": 1.0}]

    failing = tmp_path / "failing"
    with pytest.raises(RuntimeError, match="out of memory"):
        run_logged_trainer(lambda cbs: FakeTrainer(cbs, fail=True), args, "grpo", failing)
    # the line logged before the failure is on disk (the writer was closed, not left buffered)
    assert read_metrics(failing / "metrics.jsonl")[0]["stage"] == "grpo"


def test_save_policy_stage_writes_the_layout_and_removes_scratch(tmp_path):
    class Tokenizer:
        def save_pretrained(self, path):
            (tmp_path / "out" / "adapter" / "tokenizer.json").write_text("{}")

    cfg = SimpleNamespace(output_dir=tmp_path / "out", lora=object(), save="adapter", save_steps=None)
    result = save_policy_stage(
        FakeTrainer([]),
        cfg,
        Tokenizer(),
        stage="grpo",
        base=tmp_path / "base",
        counts={"prompts": 8},
        extra={"reward_functions": ["r"]},
    )
    adapter = tmp_path / "out" / "adapter"
    assert result.adapter == adapter and result.base_model == tmp_path / "base"
    assert result.counts == {"prompts": 8, "steps": 3, "world_size": 1}
    assert result.metrics == {"loss": 0.5, "train_runtime": 2.0}  # the latest value of every key
    assert (adapter / "tokenizer.json").is_file()
    assert not (adapter / "training_args.bin").exists()
    assert not (adapter / "ref").exists()  # TRL's frozen reference copy (DPO continue mode)
    assert not (tmp_path / "out" / "trainer").exists()  # nothing resumable was asked for
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["stage"] == "grpo" and written["adapter"] == str(adapter)


def test_metrics_writer_copies_numbers_to_tensorboard(tmp_path):
    """Our PPO's metrics (no transformers callbacks there) reach tensorboard through MetricsWriter."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlaif.train.common import MetricsWriter

    writer = MetricsWriter(tmp_path / "metrics.jsonl", tensorboard_dir=tmp_path / "tb")
    writer.write({"stage": "ppo", "step": 1, "policy_loss": 0.5, "kl": float("nan"), "done": True})
    writer.write({"stage": "ppo", "step": 2, "policy_loss": 0.25})
    writer.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert acc.Tags()["scalars"] == ["train/policy_loss"]  # no text, NaN or flag
    assert [(e.step, e.value) for e in acc.Scalars("train/policy_loss")] == [(1, 0.5), (2, 0.25)]
