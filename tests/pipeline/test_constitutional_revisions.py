"""The shipped revision-preference Constitutional AI loop (pipelines/constitutional_smollm2_revisions.yaml):
the policy answers, the critic critiques and revises under a sampled principle, DPO prefers the
revision over the answer. End to end on the tiny model (its own critic) here; the SmolLM2 run with
Qwen2.5-Coder as critic is the slow test at the bottom."""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.config.loading import load_run_config
from rlaif.pipeline.runner import Runner
from rlaif.records import PreferencePair, read_jsonl

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "constitutional_smollm2_revisions.yaml"


def test_revision_preference_loop_on_the_tiny_model(tmp_path, tiny_model_dir, scoring_engine):
    cfg = load_run_config(
        PIPELINE,
        [
            f"output_dir={tmp_path / 'runs'}",
            f"policy.path={tiny_model_dir}",
            "judge.model=policy",
            "judge.engine=null",
            "prompts.limit=4",
            "feedback.chunk_size=4",
            "feedback.options.few_shot=0",
            "feedback.options.response.max_tokens=12",
            "feedback.options.critique.max_tokens=12",
            "feedback.options.revision.max_tokens=12",
            "eval.instructions.prompts.limit=3",
            "eval.instructions.more_sets.paraphrased.limit=2",
            "eval.max_tokens=8",
            "engine.kv_cache_gb=0.25",
            "rounds=1",
            "dpo.max_steps=1",
            "dpo.per_device_train_batch_size=2",
        ],
    )
    metrics = Runner(cfg, engine=scoring_engine).run()
    round_1 = cfg.run_dir() / "round_1"

    # every prompt ends as a pair (revision > original answer) or a counted drop
    fb = json.loads((round_1 / "feedback" / "manifest.json").read_text())["summary"]["counts"]
    assert fb["pairs_out"] + fb["dropped"] == fb["prompts_in"] == 4
    labelled = read_jsonl(round_1 / "feedback" / "pairs.jsonl", PreferencePair)
    for pair in labelled:
        (step,) = pair.metadata["chain"]  # one critique -> revision round
        assert pair.chosen == step["revision"] and step["critique"]
        assert step["principle_id"] and pair.metadata["critic_model"] == pair.metadata["model"]
    # the pairs stage drops a revision that copies the answer, and counts it
    kept = json.loads((round_1 / "pairs" / "manifest.json").read_text())["summary"]["counts"]
    identical = sum(p.chosen == p.rejected for p in labelled)
    assert kept["pairs_in"] == len(labelled) and kept["pairs_kept"] == len(labelled) - identical
    assert kept["pairs_dropped"] == identical

    rounds = metrics["rounds"]
    assert [r["instruction_samples"] for r in rounds] == [3, 3]
    assert [r["paraphrased_instruction_samples"] for r in rounds] == [2, 2]
    assert rounds[1]["instruction_change_vs_start"]["paired"] == 3
