"""RLCF on a real code model (pipelines/code_rlcf_qwen.yaml): the prompt an MBPP problem is shown
with, the paired per-sample change of the held-out code evaluation (on the tiny model), and the
shipped Qwen2.5-Coder-0.5B-Instruct run itself (slow, skipped without the imported model)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlaif.code.problems import code_prompt, load_problems
from rlaif.config import RunConfig
from rlaif.config.loading import load_run_config
from rlaif.pipeline.runner import Runner

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "code_rlcf_qwen.yaml"


def test_an_mbpp_prompt_names_the_function_its_tests_call(shared_data):
    """MBPP's text never names the function; without its first assert a right program fails on its name."""
    problem = next(p for p in load_problems(shared_data / "mbpp" / "mbpp.jsonl") if p.task_id == "700")
    (message,) = code_prompt(problem)
    assert message.role == "user"
    assert message.content == f'"""\n{problem.prompt}\n{problem.tests[0]}\n"""\n'
    assert "count_range_in_list(" in message.content  # the name only the test gives
    plus = load_problems(shared_data / "evalplus" / "MbppPlus-v0.2.0.jsonl.gz")[0]
    assert code_prompt(plus)[0].content == plus.prompt  # EvalPlus prompts already carry one assert


def _samples(run_dir: Path, k: int) -> dict[str, bool]:
    path = run_dir / f"round_{k}" / "eval" / "samples.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {f"{r['id']}#{r['sample']}": r["passed"] for r in rows if r["kind"] == "code"}


def test_code_eval_pairs_each_round_with_the_start(tmp_path, tiny_model_dir, vllm_engine):
    cfg = RunConfig.model_validate(
        {
            "name": "paired",
            "seed": 1,
            "output_dir": str(tmp_path / "runs"),
            "policy": {"path": str(tiny_model_dir)},
            "prompts": {"kind": "demo_code", "split": "train", "limit": 2},
            "feedback": {"source": "rlcf", "options": {"k": 2, "sampling": {"max_tokens": 16}}},
            "rounds": 1,
            "dpo": {"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 128},
            "eval": {
                "code_problems": {"kind": "demo_code", "split": "heldout", "limit": 3},
                "code_samples": 2,
                "max_tokens": 16,
            },
            "health": {"min_pairs": 0},  # a random tiny model rarely writes a program that passes
        }
    )
    rounds = Runner(cfg, engine=vllm_engine).run()["rounds"]
    assert "code_change_vs_start" not in rounds[0]
    change = rounds[1]["code_change_vs_start"]
    before, after = _samples(cfg.run_dir(), 0), _samples(cfg.run_dir(), 1)
    assert change["paired"] == len(before) == 6 and change["unmatched"] == 0
    assert change["gained"] == sum(after[k] and not before[k] for k in before)
    assert change["lost"] == sum(before[k] and not after[k] for k in before)
    assert 0 < change["sign_test_p"] <= 1


QWEN = Path(os.environ.get("RLAIF_QWEN_CODER", REPO / "models" / "qwen2.5-coder-0.5b-instruct"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (QWEN / "config.json").is_file(),
    reason="Qwen2.5-Coder-0.5B-Instruct not imported (rlaif models qwen-coder models/qwen2.5-coder-0.5b-instruct)",
)
def test_qwen_coder_rlcf_loop(tmp_path):
    """The shipped run (2 DPO rounds and a GRPO round; about 2 hours on 2 cores). Measured to the end
    (README): 41.7% -> 38.3% -> 41.7% -> 40.0%, no round's paired change significant (12 pairs a
    round), so this checks that every round is measured on the same held-out samples and that the
    tests, not a judge, made the pairs; it asserts no gain the measurements have not shown."""
    cfg = load_run_config(PIPELINE, [f"output_dir={tmp_path / 'runs'}", f"policy.path={QWEN}"])
    metrics = Runner(cfg).run()
    rounds = metrics["rounds"]
    assert len(rounds) == 4  # start, 2 DPO rounds, the final round
    base = rounds[0]
    assert base["code_problems"] == 60 and 0.2 < base["pass@1"] < 0.8  # a real coder, not a broken prompt
    for r in rounds[1:]:
        change = r["code_change_vs_start"]
        print(r["label"], r["pass@1"], change)
        assert change["paired"] == 60 and change["unmatched"] == 0
    for k in (1, 2):
        fb = json.loads((cfg.run_dir() / f"round_{k}" / "feedback" / "manifest.json").read_text())
        assert fb["summary"]["counts"]["pairs_out"] > 0
        pairs = (cfg.run_dir() / f"round_{k}" / "feedback" / "pairs.jsonl").read_text().splitlines()
        for meta in (json.loads(line)["metadata"] for line in pairs):
            assert meta["chosen"]["status"] == "passed" and meta["rejected"]["status"] != "passed"
    steps = [json.loads(line) for line in (cfg.run_dir() / "final" / "train" / "metrics.jsonl").open()]
    stopped = [s["completions/stopped_ratio"] for s in steps if "completions/stopped_ratio" in s]
    assert stopped and sum(stopped) / len(stopped) > 0.5  # the GRPO rollouts end at the code block's end
