"""Resume after SIGKILL: the final records equal an uninterrupted run's, with no loss or duplicate.

The feedback stage (self-rewarding: one engine call generates a chunk's candidates, the next one
judges them) is killed twice at exact points with the tests' fault hook (fault_run.py), which SIGKILLs the process
at the start of the N-th engine call of chunk C: first while chunk 1 is generating (1:1), then, in
the resumed run, while chunk 2 (the last) is being judged (2:2). Both killed runs are real ``rlaif run``
processes with their own vLLM engine; the second one resumes from what the first left on disk. The
run is finished in this process on the session engine: starting a third engine process would prove
nothing the second killed run (a resumed CLI run) does not.

The judge is the label-probability judge (``harm_yesno``: P(No) read from the answer token's
log-probabilities, the answer constrained to Yes or No, one ``generate`` call per chunk), because
the random tiny model never writes a rubric verdict that parses: with a rubric judge every judgment
was invalid and both runs' pairs files were empty, so comparing them proved nothing. The test now
requires pairs and mostly valid judgments before it compares, and one prompt longer than the
context gives a drop in the first chunk (the one kept on disk and read back), so every output file
it compares holds records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from rlaif.config.loading import load_run_config
from rlaif.pipeline.runner import Runner

FAULT_RUN = Path(__file__).resolve().parent / "fault_run.py"
REPO = Path(__file__).resolve().parents[2]
OUTPUTS = ("pairs.jsonl", "judgments.jsonl", "dropped.jsonl")
PROMPTS = 6
TOO_LONG = "p1"  # in chunk 0: its drop is written by the first killed run and read back


def write_prompts(path: Path) -> Path:
    """Six short questions, one of them (``p1``) far longer than the 1024-token context."""
    rows = [
        {"id": f"p{i}", "prompt": f"Question {i}: what is a good name for a cat?"} for i in range(PROMPTS)
    ]
    rows[1]["prompt"] = " ".join(f"w{i}" for i in range(1500))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(run_config, out: str, model: Path, prompts: Path) -> Path:
    """A one-round self-rewarding run on 6 prompts, in 3 chunks of 2, into ``out``."""
    data = run_config.tiny(
        model,
        name="resume",
        seed=11,
        output_dir=str(run_config.tmp_path / out),
        prompts={"kind": "jsonl", "path": str(prompts)},
        feedback={
            "source": "self_rewarding",
            "chunk_size": 2,
            "options": {"num_generations": 3, "sampling": {"max_tokens": 12}},
        },
        judge={"template": "harm_yesno"},  # always a valid verdict, even from a random model
    )
    return run_config.write(data, f"{out}.yaml")


def run_killed_at(path: Path, point: str, log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(FAULT_RUN), point, str(path)],
            stdout=fh,
            stderr=fh,
            env=env,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=600)
        finally:
            # the SIGKILLed runner leaves vLLM's engine processes orphaned in its session: reap them
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert code == -signal.SIGKILL, log.read_text()[-2000:]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_not_degenerate(ref_dir: Path) -> None:
    """The uninterrupted run made pairs from mostly valid judgments and dropped the long prompt, so
    the comparison below compares records, not empty files."""
    judgments = records(ref_dir / "judgments.jsonl")
    valid = sum(j["status"] == "ok" for j in judgments)
    assert judgments and valid >= 0.9 * len(judgments), f"{valid} of {len(judgments)} judgments valid"
    pairs = records(ref_dir / "pairs.jsonl")
    assert len(pairs) >= 3, f"only {len(pairs)} pairs"
    assert [
        d["prompt_id"] for d in records(ref_dir / "dropped.jsonl") if d["reason"] == "prompt_too_long"
    ] == [TOO_LONG]


def test_sigkill_mid_feedback_resumes_to_identical_records(tmp_path, run_config, tiny_model_dir, vllm_engine):
    prompts = write_prompts(tmp_path / "resume_prompts.jsonl")  # not the builder's prompts.jsonl
    reference = load_run_config(config(run_config, "uninterrupted", tiny_model_dir, prompts))
    Runner(reference, engine=vllm_engine).run()
    ref_dir = reference.run_dir() / "round_1" / "feedback"
    assert_not_degenerate(ref_dir)

    path = config(run_config, "killed", tiny_model_dir, prompts)
    fb_dir = load_run_config(path).run_dir() / "round_1" / "feedback"
    chunks = fb_dir / "chunks"
    run_killed_at(path, "1:1", tmp_path / "kill1.log")  # chunk 1 generating
    assert sorted(p.name for p in chunks.glob("chunk_*.json")) == ["chunk_00000.json"]
    run_killed_at(path, "2:2", tmp_path / "kill2.log")  # resumed: chunk 1 redone, chunk 2 judging
    assert sorted(p.name for p in chunks.glob("chunk_*.json")) == ["chunk_00000.json", "chunk_00001.json"]
    assert not (fb_dir / "manifest.json").exists()
    kept = {p.name: p.stat().st_mtime_ns for p in chunks.glob("chunk_*.json")}

    finished = Runner(load_run_config(path), engine=vllm_engine)
    finished.run()
    assert "round_1/feedback" in finished.executed  # it resumed the stage, it did not skip it
    assert {name: (chunks / name).stat().st_mtime_ns for name in kept} == kept  # read back, not redone
    for name in OUTPUTS:
        ours = (fb_dir / name).read_text().splitlines()
        theirs = (ref_dir / name).read_text().splitlines()
        assert len(ours) == len(set(ours)), f"duplicates in {name}"
        assert ours == theirs, f"{name} differs from the uninterrupted run"
    stats = yaml.safe_load((fb_dir / "stats.json").read_text())
    assert stats["prompts_in"] == PROMPTS
    assert stats["pairs_out"] + sum(stats["drops"].values()) == PROMPTS
