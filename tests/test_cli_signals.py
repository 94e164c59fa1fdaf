"""SIGINT (Ctrl-C) and SIGTERM (kill) through the real CLI: exit 130/143, one line on stderr saying what
was kept and how to resume, no child process left behind, and a re-run that picks up from there.

The signal is sent at a real point of the work: after the first pre-training step (tiny-model), after
the first DPO step was logged (train dpo), after vLLM's engine processes started and the first feedback
chunk was written (run).
"""

from __future__ import annotations

import json
import signal

import pytest
import yaml
from cli_process import CliProcess, interruptible_run

CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGINT", "SIGTERM"]
)
def test_tiny_model_pretraining_interrupted_then_rebuilt(tmp_path, sig):
    out = tmp_path / "model"
    with CliProcess(["tiny-model", str(out), "--steps", "5000"], tmp_path, "killed") as cli:
        cli.wait_until(lambda: "pre-training: 1/5000 steps" in cli.stderr(), timeout=300)
        cli.send(sig, group=sig == signal.SIGINT)
        assert cli.finish(timeout=120) == CODES[sig]
        assert _last_line(cli.stderr()) == (
            f"interrupted ({sig.name}): no model weights were written to {out} (they are saved after "
            "the last step); run the same command again to build it from the start"
        )
        assert cli.stdout() == ""
        assert cli.survivors() == []
        assert not (out / "model.safetensors").exists()
    again = CliProcess(["tiny-model", str(out), "--steps", "2"], tmp_path, "again")
    assert again.finish(timeout=300) == 0, again.stderr()
    assert again.stdout() == f"{out}\n"  # the result only; progress went to stderr
    assert "pre-training: 2/2 steps" in again.stderr() and "Writing model shards" not in again.stderr()
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_train_dpo_interrupted_after_a_step_then_rerun(tmp_path, tiny_model_dir):
    from rlaif.records import Message, PreferencePair, write_jsonl

    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(
        pairs,
        [
            PreferencePair(
                id=f"p{i}",
                prompt=[Message(role="user", content=f"Say something about {i}.")],
                chosen=f"Here is something kind about {i}, thank you.",
                rejected="No.",
                source="test",
            )
            for i in range(16)
        ],
    )
    config = tmp_path / "dpo.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "policy": {"path": str(tiny_model_dir)},
                "pairs": [str(pairs)],
                "output_dir": str(tmp_path / "out"),
                "per_device_train_batch_size": 2,
                "lora": {"r": 4, "alpha": 8},
            }
        )
    )
    metrics = tmp_path / "out" / "metrics.jsonl"
    with CliProcess(
        ["train", "dpo", "-c", str(config), "--set", "max_steps=5000"], tmp_path, "killed"
    ) as cli:
        cli.wait_until(lambda: metrics.is_file() and metrics.read_text().strip() != "", timeout=600)
        cli.send(signal.SIGINT, group=True)
        assert cli.finish(timeout=120) == 130
        assert _last_line(cli.stderr()) == (
            f"interrupted (SIGINT): the steps logged so far are kept in {metrics}; no model was saved; "
            f"train again with: rlaif train dpo --config {config} --set max_steps=5000"
        )
        assert cli.stdout() == ""
        assert cli.survivors() == []
        assert not (tmp_path / "out" / "adapter").exists()
    again = CliProcess(["train", "dpo", "-c", str(config), "--set", "max_steps=2"], tmp_path, "again")
    assert again.finish(timeout=600) == 0, again.stderr()
    result = json.loads(again.stdout())  # the result only: TRL's per-step dicts went to stderr
    assert result["counts"]["steps"] == 2
    assert "dpo: 2/2 steps" in again.stderr() and "{'loss'" not in again.stderr()  # progress, no log dicts
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_run_sigterm_then_sigint_then_resume_to_the_end(tmp_path, run_config, tiny_model_dir, shared_data):
    judge = {"template": "self_rewarding_rubric", "options": {"samples": 1, "sampling": {"max_tokens": 16}}}
    config = interruptible_run(run_config, tiny_model_dir, shared_data, "signals", judge=judge)
    run_dir = tmp_path / "runs" / "signals"
    chunks = run_dir / "round_1" / "feedback" / "chunks"
    hint = f"finished stages and chunks are kept in {run_dir}; resume with: rlaif run {config}"

    def n_chunks() -> int:
        return len(list(chunks.glob("chunk_*.json"))) if chunks.is_dir() else 0

    # 1. kill (SIGTERM to the CLI only) once the engine runs and the first chunk is on disk
    with CliProcess(["run", str(config)], tmp_path, "sigterm") as first:
        first.wait_until(lambda: n_chunks() >= 1)
        assert {"VLLM::EngineCore", "VLLM::Worker"} <= first.seen_names()
        first.send(signal.SIGTERM)
        assert first.finish(timeout=180) == 143
        assert _last_line(first.stderr()) == f"interrupted (SIGTERM): {hint}"
        assert first.survivors() == [], "engine processes outlived the run"
        assert first.stdout() == ""
    kept = n_chunks()
    assert 1 <= kept < 20 and not (run_dir / "round_1" / "feedback" / "manifest.json").exists()

    # 2. resume, then Ctrl-C (SIGINT to the whole process group) after one more chunk
    with CliProcess(["run", str(config)], tmp_path, "sigint") as second:
        second.wait_until(lambda: n_chunks() > kept)
        second.send(signal.SIGINT, group=True)
        assert second.finish(timeout=180) == 130
        assert _last_line(second.stderr()) == f"interrupted (SIGINT): {hint}"
        assert second.survivors() == []
        assert "(cached)" in second.stderr()  # the chunks from run 1 were read back, not redone
        assert "Traceback" not in second.stderr(), second.stderr()[-6000:]  # vLLM did not see the Ctrl-C

    # 3. resume to the end: stdout is exactly the JSON result, stderr has progress but no vLLM INFO logs
    with CliProcess(["run", str(config)], tmp_path, "resume") as last:
        assert last.finish(timeout=900) == 0, last.stderr()[-3000:]
        assert last.survivors() == []
    result = json.loads(last.stdout())
    assert result["run_dir"] == str(run_dir) and "round_1/feedback" in result["executed"]
    assert "round_0/eval" in result["skipped"]
    assert n_chunks() == 20
    err = last.stderr()
    assert "(cached)" in err and "feedback: 20/20 chunks" in err
    assert " INFO " not in err
