"""RLCF through the pipeline on the real tiny model: the registered source, the run's sandbox pool,
chunks, the code summary and the DPO stage, end to end and resumed."""

from __future__ import annotations

import json

from rlaif.config import RunConfig
from rlaif.pipeline.runner import Runner
from rlaif.pipeline.summary import FeedbackSummary
from rlaif.records import ExecutionResult, read_jsonl


def test_rlcf_round_on_the_tiny_model(tmp_path, tiny_model_dir, vllm_engine):
    cfg = RunConfig.model_validate(
        {
            "name": "rlcf",
            "seed": 2,
            "output_dir": str(tmp_path / "runs"),
            "policy": {"path": str(tiny_model_dir)},
            "prompts": {"kind": "demo_code", "split": "train", "limit": 3},
            "feedback": {
                "source": "rlcf",
                "chunk_size": 2,
                "options": {"k": 2, "partial_margin": 0.0, "sampling": {"max_tokens": 16}},
            },
            "rounds": 1,
            "dpo": {"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 128},
            "health": {"min_pairs": 0},  # a random tiny model rarely writes a program that passes
        }
    )
    runner = Runner(cfg, engine=vllm_engine)
    runner.run()
    fb = runner.summaries["round_1/feedback"]
    assert isinstance(fb, FeedbackSummary) and fb.counts["prompts_in"] == 3
    assert fb.counts["executions"] >= 3 and fb.stats["problems"] == 3  # merged over 2 chunks
    assert fb.counts["pairs_out"] + fb.counts["dropped"] == 3  # every problem: one pair or one drop
    executions = read_jsonl(fb.outputs.executions, ExecutionResult)
    assert len(executions) == fb.counts["executions"]
    assert len(list((cfg.run_dir() / "round_1" / "feedback" / "chunks").glob("chunk_*.json"))) == 2
    stored = json.loads((cfg.run_dir() / "round_1" / "feedback" / "manifest.json").read_text())["summary"]
    assert stored == fb.to_json()

    again = Runner(cfg, engine=vllm_engine)
    again.run()
    assert again.executed == [] and again.summaries["round_1/feedback"] == fb
