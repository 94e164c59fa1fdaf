"""The shipped revision-preference Constitutional AI loop (pipelines/constitutional_smollm2_revisions.yaml):
the policy answers, the critic critiques and revises under a sampled principle, DPO prefers the
revision over the answer. End to end on the tiny model (its own critic) here; the SmolLM2 run with
Qwen2.5-Coder as critic is the slow test at the bottom."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

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


SMOLLM2 = Path(os.environ.get("RLAIF_SMOLLM2", REPO / "models" / "smollm2-135m-instruct"))
QWEN = Path(os.environ.get("RLAIF_QWEN_CODER", REPO / "models" / "qwen2.5-coder-0.5b-instruct"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (SMOLLM2 / "config.json").is_file() or not (QWEN / "config.json").is_file(),
    reason="SmolLM2 or Qwen2.5-Coder not converted (make real-model; rlaif models qwen-coder)",
)
def test_smollm2_learns_from_qwens_revisions_on_both_held_out_sets(tmp_path):
    """The shipped run on the real models (SmolLM2 answers, Qwen2.5-Coder-0.5B critiques and revises;
    about 37 min on 2 cores). It asserts what the critic contributes, checked by code after the fact
    (its revisions fix many more failed instructions than they break: 47 vs 1 and 39 vs 3 measured),
    every prompt as a pair or a counted drop, the stub filter at work (20 pairs a round measured), both
    held-out sets measured every round, and the gains the measured run showed after round 2 (README,
    "Constitutional AI on SmolLM2"): passes 90 gained vs 14 lost on the training wordings and 47 vs 7
    on unseen wordings, asserted at gained > 3 x lost and p < 0.001; passes AND answers the request
    65 vs 34 (p = 0.0024) and 25 vs 9 (p = 0.009), asserted at p < 0.05; 77.5% of the replies answer
    (65.5% without the stub filter), asserted at 70%."""
    fixes_script = load_benchmark("cai_revision_fixes")

    cfg = load_run_config(
        PIPELINE, [f"output_dir={tmp_path / 'runs'}", f"policy.path={SMOLLM2}", f"judge.model={QWEN}"]
    )
    metrics = Runner(cfg).run()
    run_dir = cfg.run_dir()
    specs = fixes_script.instructions_by_id(
        fixes_script.read_jsonl(REPO / "prompts" / "instructions" / "train.jsonl")
    )
    for k in (1, 2):
        fb = json.loads((run_dir / f"round_{k}" / "feedback" / "manifest.json").read_text())["summary"]
        assert fb["counts"]["pairs_out"] + fb["counts"]["dropped"] == fb["counts"]["prompts_in"] == 270
        sft = run_dir / f"round_{k}" / "feedback" / "sft.jsonl"
        fixes = fixes_script.revision_fixes(fixes_script.read_jsonl(sft), specs, sft)
        assert fixes["fixed"] > 4 * fixes["broken"] and fixes["sign_test_p"] < 1e-3, (k, fixes)
        kept = json.loads((run_dir / f"round_{k}" / "pairs" / "manifest.json").read_text())["summary"]
        assert kept["drops"].get("chosen_too_short", 0) > 0, kept
    rounds = metrics["rounds"]
    assert len(rounds) == 3  # start, 2 DPO rounds
    for r in rounds[1:]:
        for prefix in ("", "paraphrased_"):
            assert r[f"{prefix}instruction_change_vs_start"]["paired"] == 400
    print(
        {
            r["label"]: (r["instruction_pass_answered_rate"], r["paraphrased_instruction_pass_answered_rate"])
            for r in rounds
        }
    )
    last = rounds[2]
    assert last["instruction_answered_rate"] >= 0.7, last["instruction_answered_rate"]
    for prefix in ("", "paraphrased_"):
        change = last[f"{prefix}instruction_change_vs_start"]
        assert change["gained"] > 3 * change["lost"] and change["sign_test_p"] < 1e-3, (prefix, change)
        strict = last[f"{prefix}instruction_answered_change_vs_start"]
        assert strict["gained"] > strict["lost"] and strict["sign_test_p"] < 0.05, (prefix, strict)
