"""``rlaif export``: a run's pairs in TRL's conversational format, through the real CLI, read back with
``datasets`` and trained on for one real DPO step by TRL's own DPOTrainer on the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlaif.cli import main
from rlaif.records import Message, PreferencePair, write_jsonl

WORDS = ["apple", "river", "stone", "cloud", "green", "music"]


def _pairs(round_index: int, n: int) -> list[PreferencePair]:
    return [
        PreferencePair(
            id=f"r{round_index}-{i}",
            prompt=[
                Message(role="system", content="Be kind."),
                Message(role="user", content=f"Tell me about the {WORDS[i % len(WORDS)]} number {i}."),
            ],
            chosen=f"The {WORDS[i % len(WORDS)]} is good, thank you.",
            rejected=f"No. Go away about {WORDS[i % len(WORDS)]}!",
            soft_label=0.8 if i % 2 else None,
            margin=float(i),
            source="rlcd",
            round=round_index,
            judgment_ids=[f"j{i}"],
            metadata={"nested": {"any": [1, "x"]}},
        )
        for i in range(n)
    ]


def _finished_round(run_dir: Path, k: int, pairs: list[PreferencePair]) -> None:
    stage = run_dir / f"round_{k}" / "pairs"
    write_jsonl(stage / "pairs.jsonl", pairs)
    (stage / "manifest.json").write_text("{}\n")


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """Rounds 1 and 2 finished (3 and 5 pairs), round 3's pairs written but its stage not finished."""
    run = tmp_path / "runs" / "demo"
    (run / "round_0" / "eval").mkdir(parents=True)
    _finished_round(run, 1, _pairs(1, 3))
    _finished_round(run, 2, _pairs(2, 5))
    write_jsonl(run / "round_3" / "pairs" / "pairs.jsonl", _pairs(3, 2))
    return run


def _export(capsys, *args) -> tuple[int, str, str]:
    code = main(["export", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_trl_export_of_all_rounds_loads_with_load_dataset(run_dir, tmp_path, capsys):
    from datasets import load_dataset

    out = tmp_path / "export_trl"
    code, stdout, stderr = _export(capsys, run_dir, "--format", "trl", "--out", out)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["pairs"] == 8 and summary["rounds"] == {"1": 3, "2": 5}
    assert summary["skipped_rounds"] == {"3": "pairs stage not finished"}
    assert "round 3 left out" in stderr

    ds = load_dataset("json", data_dir=str(out))["train"]
    assert len(ds) == 8
    assert set(ds.column_names) == {
        "prompt",
        "chosen",
        "rejected",
        "id",
        "round",
        "source",
        "soft_label",
        "margin",
    }
    row = ds[4]
    assert row["id"] == "r2-1" and row["round"] == 2 and row["soft_label"] == 0.8 and row["margin"] == 1.0
    assert row["prompt"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Tell me about the river number 1."},
    ]
    assert row["chosen"] == [{"role": "assistant", "content": "The river is good, thank you."}]
    assert row["rejected"] == [{"role": "assistant", "content": "No. Go away about river!"}]
    assert ds[0]["soft_label"] is None


def test_hf_export_of_one_round_loads_from_disk(run_dir, tmp_path, capsys):
    from datasets import load_from_disk

    out = tmp_path / "export_hf"
    code, stdout, stderr = _export(capsys, run_dir, "--format", "hf", "--out", out, "--round", "2")
    assert code == 0, stderr
    assert json.loads(stdout)["rounds"] == {"2": 5}
    ds = load_from_disk(str(out))
    assert ds["id"] == [f"r2-{i}" for i in range(5)]
    assert ds[3]["chosen"] == [{"role": "assistant", "content": "The cloud is good, thank you."}]
    assert not list(tmp_path.glob(".export_hf.*")), "the build directory must be renamed into place"


def test_overwrite_replaces_an_existing_export(run_dir, tmp_path, capsys):
    out = tmp_path / "export"
    assert _export(capsys, run_dir, "--format", "trl", "--out", out, "--round", "1")[0] == 0
    code, _, stderr = _export(capsys, run_dir, "--format", "trl", "--out", out)
    assert (
        code == 2
        and stderr.strip()
        == f"error: --out {out}: already exists and is not empty (pass --overwrite to replace it)"
    )
    code, stdout, _ = _export(capsys, run_dir, "--format", "trl", "--out", out, "--overwrite")
    assert code == 0 and json.loads(stdout)["pairs"] == 8
    assert len((out / "train.jsonl").read_text().splitlines()) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "runs"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope", "--format", "trl"], "run directory not found: {tmp}/nope"),
        (["{run}", "--format", "trl", "--round", "7"], "{run}: round 7 not found (rounds present: 1, 2, 3)"),
        (
            ["{run}", "--format", "trl", "--round", "3"],
            "{run}/round_3/pairs/pairs.jsonl: missing or unfinished",
        ),
        (
            ["{run}", "--format", "trl", "--round", "0"],
            "--round must be a round number (1, 2, ...) or 'all', got '0'",
        ),
        (["{run}", "--format", "csv"], "--format must be 'trl' or 'hf', got 'csv'"),
        (["{tmp}", "--format", "trl"], "{tmp}: no round_<k> directories"),
    ],
)
def test_bad_input_is_one_error_line(run_dir, tmp_path, capsys, args, message):
    filled = [a.format(tmp=tmp_path, run=run_dir) for a in args]
    code, stdout, stderr = _export(capsys, *filled, "--out", tmp_path / "out")
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message.format(tmp=tmp_path, run=run_dir)), (
        stderr
    )
    assert not (tmp_path / "out").exists()


def test_a_malformed_pair_names_file_and_line(run_dir, tmp_path, capsys):
    bad = run_dir / "round_1" / "pairs" / "pairs.jsonl"
    bad.write_text(bad.read_text() + '{"id": "x", "prompt": [], "chosen": "a"}\n')
    code, _, stderr = _export(capsys, run_dir, "--format", "trl", "--out", tmp_path / "out")
    assert code == 2 and stderr.startswith(f"error: {bad}:4: invalid PreferencePair")


def test_trl_dpo_trainer_takes_the_export_unchanged(run_dir, tmp_path, capsys, tiny_model_dir):
    """TRL's own DPOTrainer, not ours, on the JSON export as ``load_dataset`` returns it: one real step."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = tmp_path / "export"
    assert _export(capsys, run_dir, "--format", "trl", "--out", out)[0] == 0
    train = load_dataset("json", data_files=str(out / "train.jsonl"))["train"]

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    args = DPOConfig(
        output_dir=str(tmp_path / "trainer"),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    trainer.train()
    assert trainer.state.global_step == 1
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 1 and math.isfinite(losses[0])
    assert any(not torch.equal(before[k], v) for k, v in model.named_parameters())


def test_rounds_whose_pairs_were_all_filtered_out_are_an_error(tmp_path, capsys):
    run = tmp_path / "run"
    _finished_round(run, 1, [])
    code, stdout, stderr = _export(capsys, run, "--format", "hf", "--out", tmp_path / "out")
    assert code == 2 and stdout == "" and not (tmp_path / "out").exists()
    assert stderr == f"error: {run}: the selected rounds hold no pairs (every pair was filtered out)\n"
