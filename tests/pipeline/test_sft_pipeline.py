"""Constitutional AI's two stages in one run on the real tiny model: SL-CAI revisions train the policy
(the SFT stage), then RL-CAI pairs sampled from the SFT policy train it further (DPO continuing the SFT
adapter); a re-run skips every stage."""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.config.loading import load_run_config
from rlaif.feedback.result import SFTRecord
from rlaif.pipeline.manifest import hash_path
from rlaif.pipeline.runner import Runner
from rlaif.records import PreferencePair, read_jsonl

REPO = Path(__file__).resolve().parents[2]
HH = Path(__file__).resolve().parent / "assets" / "hh_with_malformed.jsonl"


def overrides(tmp_path: Path, model: Path) -> list[str]:
    small = [f"sft.feedback.options.{k}.max_tokens=12" for k in ("response", "critique", "revision")]
    return [
        f"policy.path={model}",
        f"output_dir={tmp_path}",
        "engine.max_model_len=1024",
        "prompts.kind=hh",
        f"prompts.path={HH}",
        "prompts.limit=4",
        "feedback.chunk_size=4",
        "feedback.options.sampling.max_tokens=12",
        "sft.feedback.chunk_size=4",
        "sft.feedback.options.few_shot=0",
        *small,
        "sft.options.max_steps=2",
        "sft.options.per_device_train_batch_size=2",
        "sft.options.learning_rate=1e-3",
        "sft.options.max_length=256",
        "rounds=1",
        "dpo.max_steps=1",
        "dpo.per_device_train_batch_size=2",
        "dpo.max_length=256",
        "eval.win_rate_prompts=null",
        # the random tiny model follows no judge format: this test is about the stages
        "health.max_judge_invalid_rate=null",
        "health.min_pairs=0",
    ]


def test_sl_cai_revisions_train_the_policy_before_rl_cai(tmp_path, tiny_model_dir, vllm_engine):
    path = REPO / "pipelines" / "constitutional.yaml"
    cfg = load_run_config(path, overrides(tmp_path, tiny_model_dir))
    runner = Runner(cfg, engine=vllm_engine)
    metrics = runner.run()
    run_dir = cfg.run_dir()
    assert runner.executed == [
        "round_0/eval", "sft/feedback", "sft/train",
        "round_1/feedback", "round_1/pairs", "round_1/train", "round_1/eval",
    ]  # fmt: skip
    # the SL stage wrote revisions, and SFT trained on every one of them
    records = read_jsonl(run_dir / "sft" / "feedback" / "sft.jsonl", SFTRecord)
    assert records and all(r.source == "sl_cai" for r in records)
    result = json.loads((run_dir / "sft" / "train" / "result.json").read_text())
    assert result["counts"]["records"] == len(records) and result["counts"]["steps"] == 2
    sft_adapter = run_dir / "sft" / "train" / "adapter"
    assert (sft_adapter / "adapter_config.json").is_file()
    # RL-CAI sampled from the SFT policy: round 1's feedback stage was run on (and hashed) its adapter,
    # and every pair it made (the random model makes few) names that adapter as the one served
    manifest = json.loads((run_dir / "round_1" / "feedback" / "manifest.json").read_text())
    assert manifest["input_hashes"]["adapter"] == hash_path(sft_adapter)
    fb = manifest["summary"]["counts"]
    assert fb["pairs_out"] + fb["dropped"] == fb["prompts_in"] == 4
    pairs = read_jsonl(run_dir / "round_1" / "feedback" / "pairs.jsonl", PreferencePair)
    assert all(p.metadata["adapter"] == str(sft_adapter) for p in pairs)
    # the report has the SFT stage's training curve next to the DPO round's
    assert set(metrics["training"]) == {"sft", "round_1"} and metrics["training"]["sft"]["curve"]
    assert metrics["feedback"]["sft"]["counts"]["prompts_in"] == 4

    again = Runner(load_run_config(path, overrides(tmp_path, tiny_model_dir)), engine=vllm_engine)
    again.run()
    assert again.executed == [] and set(again.skipped) == set(runner.executed)
