"""The shipped Self-Rewarding loop (pipelines/self_rewarding_smollm2.yaml): the policy samples, judges
its own samples with the instruction-likelihood judge, best vs worst trains it with DPO, a final GRPO
round is rewarded by the same judge, and every round is measured on both held-out instruction sets.
End to end on the tiny model here; the SmolLM2 run itself is the slow test at the bottom."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlaif.config.loading import load_run_config
from rlaif.instructions import check_all
from rlaif.pipeline.runner import Runner
from rlaif.records import PreferencePair, read_jsonl

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "self_rewarding_smollm2.yaml"


def _samples(run_dir: Path, stage: str) -> list[dict]:
    path = run_dir / stage / "eval" / "samples.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_full_weight_final_round_keeps_the_engine_able_to_score_text():
    """The judge scores text, which vLLM refuses on an engine started with LoRA: a final round that
    fine-tunes full weights must not switch LoRA on (it did, and the first SmolLM2 run stopped at
    round 1's feedback after 50 minutes); one with its own lora still does."""
    from rlaif.pipeline.compile import resolve
    from rlaif.pipeline.resolve import serves_adapters

    def serves(overrides: list[str]) -> bool:
        return serves_adapters(resolve(load_run_config(PIPELINE, overrides)))

    assert not serves([])
    assert serves(["final.options.lora={r: 8}"])
    assert serves(["final.options={}"])  # GRPO's default is LoRA
    assert not serves(["final.kind=none"])


def test_self_rewarding_loop_with_both_heldout_sets_on_the_tiny_model(
    tmp_path, tiny_model_dir, scoring_engine
):
    cfg = load_run_config(
        PIPELINE,
        [
            f"output_dir={tmp_path / 'runs'}",
            f"policy.path={tiny_model_dir}",
            "prompts.limit=4",
            "feedback.chunk_size=4",
            "feedback.options.sampling.max_tokens=12",
            "eval.instructions.prompts.limit=6",
            "eval.instructions.more_sets.paraphrased.limit=5",
            "eval.max_tokens=12",
            "engine.kv_cache_gb=0.25",
            "rounds=1",
            "dpo.max_steps=1",
            "dpo.per_device_train_batch_size=2",
            "final.options.max_steps=1",
            "final.options.per_device_train_batch_size=4",
            "final.options.max_completion_length=8",
        ],
    )
    metrics = Runner(cfg, engine=scoring_engine).run()
    run_dir = cfg.run_dir()

    # the policy's own judge scored every candidate; each prompt is a pair or a counted drop
    fb = json.loads((run_dir / "round_1" / "feedback" / "manifest.json").read_text())["summary"]
    assert fb["counts"]["pairs_out"] + fb["counts"]["dropped"] == fb["counts"]["prompts_in"] == 4
    counters = json.loads((run_dir / "round_1" / "feedback" / "stats.json").read_text())["counters"]
    assert counters["candidates"] == 16  # 4 prompts x 4
    excluded = sum(v for k, v in counters.items() if k.startswith("candidates_excluded"))
    assert fb["counts"]["judgments"] == 16 - excluded  # every valid candidate judged once
    for p in read_jsonl(run_dir / "round_1" / "feedback" / "pairs.jsonl", PreferencePair):
        assert p.metadata["judge_template"]["name"].endswith(":instruction_and_request_likelihood")
        assert p.metadata["chosen_score"] > p.metadata["rejected_score"]

    rounds = metrics["rounds"]
    assert len(rounds) >= 3  # start, DPO round 1, final GRPO
    for r in rounds:
        assert r["instruction_samples"] == 6 and r["paraphrased_instruction_samples"] == 5
    last = rounds[-1]
    for prefix, n in (("", 6), ("paraphrased_", 5)):
        assert last[f"{prefix}instruction_change_vs_start"]["paired"] == n
        assert last[f"{prefix}instruction_change_vs_previous"]["paired"] == n
    # each set's figures are what the checker says about that set's rows, and the sets do not mix
    rows = [r for r in _samples(run_dir, "round_1") if r["kind"] == "instructions"]
    para = [r for r in rows if r.get("set") == "paraphrased"]
    main = [r for r in rows if "set" not in r]
    assert len(para) == 5 and len(main) == 6
    assert all(r["passed"] == check_all(r["text"], r["instructions"]) for r in rows)
    assert rounds[1]["paraphrased_instruction_pass_rate"] == pytest.approx(
        sum(r["passed"] for r in para) / 5, abs=1e-4
    )
    assert rounds[1]["instruction_pass_rate"] == pytest.approx(sum(r["passed"] for r in main) / 6, abs=1e-4)


SMOLLM2 = Path(os.environ.get("RLAIF_SMOLLM2", REPO / "models" / "smollm2-135m-instruct"))


@pytest.mark.slow
@pytest.mark.skipif(not (SMOLLM2 / "config.json").is_file(), reason="SmolLM2 not converted (make real-model)")
def test_smollm2_self_rewarding_loop_judges_itself_and_is_measured_on_both_sets(tmp_path):
    """The shipped run on the real model (its two DPO rounds took 46 min on 2 cores at load 2-2.5, plus the
    final GRPO round, about 8 min). It asserts the
    loop's mechanics on the real model: the policy's own judge scores (almost) every candidate (the same
    contrast scored every candidate in benchmarks/instruction_judge_agreement.py), every prompt is a
    pair or a counted drop, and every round is measured on both held-out sets, paired with the start and
    the previous round. Then the gains the measured run showed after round 2 (README, "Real models
    learning", instruction-and-request judge): passes 69 gained vs 3 lost on the training wordings, 50
    vs 5 on unseen wordings (p < 1e-9), asserted at p < 0.001; passes AND answers the request 57 vs 27
    (p = 0.0014) and 38 vs 8 (p = 9.3e-6), asserted at p < 0.05 (the instruction-only judge's 58 vs 37
    and 33 vs 22 would fail that on unseen wordings)."""
    cfg = load_run_config(PIPELINE, [f"output_dir={tmp_path / 'runs'}", f"policy.path={SMOLLM2}"])
    metrics = Runner(cfg).run()
    run_dir = cfg.run_dir()
    for k in (1, 2):
        fb = json.loads((run_dir / f"round_{k}" / "feedback" / "manifest.json").read_text())["summary"]
        counters = json.loads((run_dir / f"round_{k}" / "feedback" / "stats.json").read_text())["counters"]
        assert counters.get("candidates_excluded_all_judgments_invalid", 0) <= 0.05 * counters["candidates"]
        assert fb["counts"]["pairs_out"] + fb["counts"]["dropped"] == fb["counts"]["prompts_in"] == 270
    rounds = metrics["rounds"]
    assert len(rounds) == 4  # start, 2 DPO rounds, final GRPO
    for k, r in enumerate(rounds[1:], start=1):
        for prefix in ("", "paraphrased_"):
            assert r[f"{prefix}instruction_samples"] == 400
            assert r[f"{prefix}instruction_change_vs_start"]["paired"] == 400
            if k > 1:  # round 1's previous round is the start: it has only the change vs start
                assert r[f"{prefix}instruction_change_vs_previous"]["paired"] == 400
    print({r["label"]: (r["instruction_pass_rate"], r["paraphrased_instruction_pass_rate"]) for r in rounds})
    last_dpo = rounds[2]
    for prefix in ("", "paraphrased_"):
        change = last_dpo[f"{prefix}instruction_change_vs_start"]
        assert change["gained"] > 2 * change["lost"] and change["sign_test_p"] < 1e-3, (prefix, change)
        strict = last_dpo[f"{prefix}instruction_answered_change_vs_start"]
        assert strict["gained"] > strict["lost"] and strict["sign_test_p"] < 0.05, (prefix, strict)


CHECKER_FINAL_ROUND = [
    "rounds=0",
    "final.reward=verifier",
    "final.require_answer=true",
    "final.options.num_generations=8",
    "final.options.per_device_train_batch_size=16",
    "final.options.learning_rate=5e-6",
    "final.options.max_steps=80",
]
"""The final round measured to add to the last DPO round (README, "Real models learning"): GRPO from
round 2's policy, rewarded by the instruction checker with non-answers scored 0, 80 steps of 2 prompts
x 8 samples."""


@pytest.mark.slow
@pytest.mark.skipif(not (SMOLLM2 / "config.json").is_file(), reason="SmolLM2 not converted (make real-model)")
def test_smollm2_final_grpo_round_rewarded_by_the_checker_adds_to_the_last_dpo_round(tmp_path):
    """Issue point "the final RL round adds to DPO", as measured: the shipped run's two DPO rounds
    (final round off), then a second run from round 2's policy with only the checker-rewarded GRPO
    round, non-answers scored 0 (about 47 + 40 min on 2 cores). Measured: passes AND answers 25.0% ->
    31.25% on the training wordings (32 / 7, p = 7.0e-5), asserted with a margin; replies that do not
    answer 84 -> 74 of 400. On unseen wordings 20.25% -> 22.25% (15 / 7, p = 0.13): not significant,
    so not asserted. Without require_answer the same round gains passes but not passes AND answers
    (24 / 19), which is why the reward requires an answer."""
    dpo = load_run_config(
        PIPELINE, [f"output_dir={tmp_path / 'dpo'}", f"policy.path={SMOLLM2}", "final.kind=none"]
    )
    Runner(dpo).run()
    round_2 = dpo.run_dir() / "round_2" / "train" / "model"
    final = load_run_config(
        PIPELINE, [f"output_dir={tmp_path / 'final'}", f"policy.path={round_2}", *CHECKER_FINAL_ROUND]
    )
    rounds = Runner(final).run()["rounds"]
    assert [r["label"] for r in rounds] == ["round 0", "final"]
    print(
        {
            r["label"]: (r["instruction_pass_answered_rate"], r["paraphrased_instruction_pass_answered_rate"])
            for r in rounds
        }
    )
    strict = rounds[1]["instruction_answered_change_vs_start"]  # "start" is round 2's policy here
    assert strict["gained"] > 3 * strict["lost"] and strict["sign_test_p"] < 1e-3, strict
    assert rounds[1]["instruction_answered_rate"] >= rounds[0]["instruction_answered_rate"]
    assert rounds[1]["mean_response_tokens"] > 0.8 * rounds[0]["mean_response_tokens"]  # not won by length


def test_the_report_notes_the_paired_change_of_every_heldout_set():
    from rlaif.pipeline.report_view import _rounds

    change = {"gained": 3, "lost": 1, "paired": 10, "sign_test_p": 0.625}
    view = _rounds(
        [
            {"round": 0, "label": "round 0", "instruction_pass_rate": 0.2, "paraphrased_instruction_pass_rate": 0.1},
            {
                "round": 1, "label": "round 1", "instruction_pass_rate": 0.4, "paraphrased_instruction_pass_rate": 0.3,
                "instruction_change_vs_start": change, "paraphrased_instruction_change_vs_start": change,
            },
        ]
    )  # fmt: skip
    assert "paraphrased_instruction_pass_rate" in view["head"]
    notes = [n for n in view["notes"] if "newly pass" in n]
    assert len(notes) == 2 and "(paraphrased) vs the start" in notes[1]
