"""benchmarks/instruction_pair_quality.py: the checker's and the answer guard's verdicts on a run's
pairs, counted right / wrong / both / neither, on hand-made pairs and on the script's command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmark_scripts import load_benchmark

REPO = Path(__file__).resolve().parents[1]
TITLE = [{"kind": "title", "value": None}]
PROMPTS = {"p1": {"id": "p1", "task": "Describe the moon.", "instructions": TITLE}}
ANSWER = "<<The Moon>>\nThe moon is a bright rock that circles the Earth."


def _pair(chosen: str, rejected: str, prompt_id: str = "p1") -> dict:
    return {"chosen": chosen, "rejected": rejected, "metadata": {"prompt_id": prompt_id}}


def test_a_non_answer_chosen_over_a_real_answer_is_right_for_the_checker_and_wrong_for_the_guard():
    quality = load_benchmark("instruction_pair_quality").quality
    pairs = [
        _pair("<<my title>>", "The moon is a bright rock that circles the Earth."),  # title only vs no title
        _pair(ANSWER, "<<moon>>"),  # both follow; only the chosen answers
        _pair(ANSWER, ANSWER),
        _pair("x", "y", prompt_id="unknown"),
    ]
    out = quality(pairs, PROMPTS)
    assert (out["right"], out["wrong"], out["both_follow"], out["no_instructions"]) == (1, 0, 2, 1)
    assert {k: out["answers"][k] for k in ("right", "wrong", "both", "neither")} == {
        "right": 1, "wrong": 1, "both": 1, "neither": 0}  # fmt: skip
    assert {k: out["strict"][k] for k in ("right", "wrong", "both", "neither")} == {
        "right": 1, "wrong": 0, "both": 1, "neither": 1}  # fmt: skip


def test_the_script_prints_one_line_per_file(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps(PROMPTS["p1"]) + "\n")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps(_pair("<<my title>>", "The moon is a bright rock that circles the Earth.")) + "\n"
    )
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "instruction_pair_quality.py"), str(pairs), "--prompts", str(prompts)],
        capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    row = json.loads(line)
    assert row["right"] == 1 and row["answers"]["wrong"] == 1 and row["strict"]["neither"] == 1
