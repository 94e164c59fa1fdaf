"""``report_to`` outside a run (``rlaif train sft`` / the Python API): a real SFT stage on the tiny model
writes transformers' tensorboard events to ``<output_dir>/tensorboard`` by default, and leaves no
TENSORBOARD_LOGGING_DIR behind in the process environment."""

from __future__ import annotations

import os

from rlaif.feedback.result import SFTRecord
from rlaif.records import Message, write_jsonl
from rlaif.train.common import TENSORBOARD_ENV, read_metrics
from rlaif.train.configs import PolicySpec
from rlaif.train.sft import SFTConfig, run_sft


def test_sft_reports_to_tensorboard_in_its_output_folder(tiny_model_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [
        SFTRecord(
            id=f"s{i}", prompt=[Message(role="user", content=f"Say {i}.")], completion=f"{i}.", source="t"
        )
        for i in range(4)
    ]
    write_jsonl(tmp_path / "sft.jsonl", rows)
    cfg = SFTConfig(
        output_dir=tmp_path / "out",
        policy=PolicySpec(path=tiny_model_dir),
        records=[tmp_path / "sft.jsonl"],
        max_steps=2,
        per_device_train_batch_size=2,
        report_to=["tensorboard"],
    )
    assert TENSORBOARD_ENV not in os.environ
    run_sft(cfg)
    assert TENSORBOARD_ENV not in os.environ
    acc = EventAccumulator(str(cfg.output_dir / "tensorboard"))
    acc.Reload()
    losses = {e.step: e.value for e in acc.Scalars("train/loss")}
    logged = {m["step"]: m["loss"] for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "loss" in m}
    assert set(losses) == set(logged) == {1, 2}
    assert all(abs(losses[s] - logged[s]) < 1e-5 * max(1.0, abs(logged[s])) for s in logged)
