"""One run per run folder, through the real CLI: a second ``rlaif run`` into a folder in use refuses
with one line naming the holder's pid; after the holder is SIGKILLed the folder is free again, the run
reads as interrupted (report banner), and no engine process outlives it; the next run notes the kill,
and a SIGTERM records 'interrupted' with the stage."""

from __future__ import annotations

import json
import os
import signal

from cli_process import CliProcess, interruptible_run

from rlaif.pipeline import run_lock
from rlaif.pipeline.health import read_status


def test_second_run_into_a_busy_folder_refuses_then_a_killed_run_reads_interrupted(
    tmp_path, run_config, tiny_model_dir, shared_data
):
    config = interruptible_run(run_config, tiny_model_dir, shared_data, "locked")
    run_dir = tmp_path / "runs" / "locked"
    lock = run_dir / run_lock.LOCK_FILE
    with CliProcess(["run", str(config)], tmp_path, "first") as first:
        first.wait_until(lambda: lock.is_file() and lock.read_text().strip() == str(first.proc.pid))
        assert run_lock.holder(run_dir) == first.proc.pid
        second = CliProcess(["run", str(config)], tmp_path, "second")
        assert second.finish(timeout=120) == 2
        assert second.stderr().strip().splitlines() == [
            f"error: {run_dir}: another rlaif run is using this run folder (pid {first.proc.pid}); wait for "
            "it to finish or stop it, or run into another folder"
        ]
        assert first.proc.poll() is None, "the refused run disturbed the first one"
        first.wait_until(lambda: "VLLM::EngineCore" in first.seen_names(), timeout=300)
        first.send(signal.SIGKILL)
        first.proc.wait(timeout=30)
        assert first.survivors(grace=10) == [], "engine processes outlived the SIGKILLed run"
    assert run_lock.holder(run_dir) is None  # the kernel dropped the lock with the process
    assert json.loads((run_dir / "status.json").read_text())["status"] == "running"  # as left on disk
    assert read_status(run_dir)["status"] == "interrupted"
    report = CliProcess(["report", str(run_dir)], tmp_path, "report")
    assert report.finish(timeout=120) == 0, report.stderr()[-2000:]
    assert "Status: INTERRUPTED" in (run_dir / "report.html").read_text()

    # the next run says the last one was killed; SIGTERM now leaves status 'interrupted' at its stage
    with CliProcess(["run", str(config)], tmp_path, "third") as third:
        third.wait_until(lambda: "VLLM::EngineCore" in third.seen_names(), timeout=300)
        third.send(signal.SIGTERM)
        assert third.finish(timeout=180) == 143
        # writing the interrupted report adds nothing after the resume hint
        assert third.stderr().strip().splitlines()[-1].startswith("interrupted (SIGTERM): finished stages")
        assert third.survivors() == []
    assert (
        f"note: the previous run in {run_dir} (pid {first.proc.pid}) was killed; resuming" in third.stderr()
    )
    status = json.loads((run_dir / "status.json").read_text())
    # the engine starts in round 1's feedback: round 0's evaluation measures nothing and starts none
    assert (status["status"], status["stage"]) == ("interrupted", "round_1/feedback"), status
    assert "Status: INTERRUPTED during round_1/feedback" in (run_dir / "report.html").read_text()
    assert run_lock.holder(run_dir) is None and not run_lock.run_was_killed(run_dir)  # released cleanly


def test_lock_is_released_on_exit_and_a_killed_holder_is_reported(tmp_path, capsys):
    with run_lock.hold(tmp_path):
        assert run_lock.holder(tmp_path) == os.getpid()
        assert not run_lock.run_was_killed(tmp_path)
    assert run_lock.holder(tmp_path) is None and not run_lock.run_was_killed(tmp_path)
    (tmp_path / run_lock.LOCK_FILE).write_text("999999999\n")  # left by a process that died holding it
    assert run_lock.run_was_killed(tmp_path)
    with run_lock.hold(tmp_path):
        pass
    assert "(pid 999999999) was killed; resuming" in capsys.readouterr().err
