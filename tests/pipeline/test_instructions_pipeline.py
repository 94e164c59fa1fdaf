"""The shipped instruction-following loop (pipelines/rlcd_instructions.yaml) end to end on the tiny
model: instruction-contrast RLCD pairs, a DPO round, and the held-out pass rate per round
checked by code. The SmolLM2 run itself (about 20 minutes) is the slow test at the bottom."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlaif.config.loading import load_run_config
from rlaif.feedback.prompts_io import load_prompts
from rlaif.instructions import answers_request, check_all
from rlaif.pipeline.runner import Runner, StageFailed
from rlaif.records import PreferencePair, read_jsonl

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "rlcd_instructions.yaml"


SMALL = {
    "prompts": {"limit": 6},
    "feedback": {
        "chunk_size": 4,
        # one candidate: scoring candidates needs an engine without LoRA (below), and the shared test
        # engine serves adapters (dpo.lora from the builder's tiny run)
        "options": {"sampling": {"max_tokens": 12}, "num_generations": 1},
    },
    "eval": {"instructions": {"prompts": {"limit": 10}}, "max_tokens": 12},
    "dpo": {"max_steps": 2},
}


def small_overrides(run_config, model: Path) -> list[str]:
    """The shipped pipeline made small: the builder's tiny run plus :data:`SMALL`, as overrides."""
    return run_config.tiny_overrides(model, **SMALL)


def test_instruction_loop_runs_on_the_tiny_model(run_config, tiny_model_dir, vllm_engine):
    cfg = load_run_config(PIPELINE, small_overrides(run_config, tiny_model_dir))
    runner = Runner(cfg, engine=vllm_engine)
    metrics = runner.run()
    run_dir = cfg.run_dir()
    assert runner.executed == [s for s in runner.plan() if s != "report"]

    # instruction-contrast RLCD: every prompt gave a pair or a counted drop
    fb = json.loads((run_dir / "round_1" / "feedback" / "manifest.json").read_text())["summary"]
    assert fb["counts"]["pairs_out"] + fb["counts"]["dropped"] == fb["counts"]["prompts_in"] == 6
    pairs = read_jsonl(run_dir / "round_1" / "feedback" / "pairs.jsonl", PreferencePair)
    assert all(p.source == "instruction_contrast" and p.round == 1 for p in pairs)
    # the pair's prompt is the request + instruction, without the reminder the positive side saw
    train = {r.id: r for r in load_prompts(cfg.prompts.path, format="jsonl")}
    assert all(p.prompt == train[p.metadata["prompt_id"]].messages for p in pairs)

    # held-out pass rate in every round's metrics, and it is what the checker says about the samples
    heldout = {
        r.id: r.metadata["task"] for r in load_prompts(cfg.eval.instructions.prompts.path, format="jsonl")
    }
    rounds = metrics["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    for k, r in enumerate(rounds):
        assert r["instruction_samples"] == 10 and r["instruction_unscored"] == 0
        lo, hi = r["instruction_pass_ci95"]
        assert 0 <= lo <= r["instruction_pass_rate"] <= hi <= 1
        rows = [
            json.loads(line)
            for line in (run_dir / f"round_{k}" / "eval" / "samples.jsonl").read_text().splitlines()
        ]
        rows = [x for x in rows if x["kind"] == "instructions"]
        assert len(rows) == 10
        assert all(x["passed"] == check_all(x["text"], x["instructions"]) for x in rows)
        assert sum(x["passed"] for x in rows) / 10 == pytest.approx(r["instruction_pass_rate"])
        # ... and whether each reply answers its request at all, by the literal guard on the request
        assert all(
            x["answered"] == answers_request(x["text"], heldout[x["id"]], x["instructions"]) for x in rows
        )
        assert sum(x["answered"] for x in rows) / 10 == pytest.approx(r["instruction_answered_rate"])
        strict = sum(x["answered"] and x["passed"] for x in rows) / 10
        assert strict == pytest.approx(r["instruction_pass_answered_rate"])

    # round 1 is compared with round 0 prompt by prompt; the counts are what the two sample files say
    rows = [
        [json.loads(x) for x in (run_dir / f"round_{k}" / "eval" / "samples.jsonl").open()] for k in (0, 1)
    ]
    # ... passed alone, and passed AND answered the request
    for key, outcome in (
        ("instruction_change_vs_start", lambda x: x["passed"]),
        ("instruction_answered_change_vs_start", lambda x: x["passed"] and x["answered"]),
    ):
        before, after = ({x["id"]: outcome(x) for x in rows[k]} for k in (0, 1))
        change = rounds[1][key]
        assert change["paired"] == 10 and change["unmatched"] == 0
        assert change["gained"] == sum(after[i] and not before[i] for i in before)
        assert change["lost"] == sum(before[i] and not after[i] for i in before)
        assert 0 < change["sign_test_p"] <= 1
        assert key not in rounds[0]

    # a re-run skips every stage
    again = Runner(load_run_config(PIPELINE, small_overrides(run_config, tiny_model_dir)), engine=vllm_engine)
    again.run()
    assert again.executed == []


def test_only_a_run_that_serves_adapters_starts_its_engine_with_lora(tmp_path, run_config, tiny_model_dir):
    """The shipped settings (candidates scored by the policy, full fine-tuning) start the run's engines
    without LoRA, so the policy can score text; a LoRA round or a starting adapter needs LoRA serving.
    The real run with those settings (its own engines, before and after training, scoring candidates)
    is test_engine_lifetime.py's."""
    from rlaif.pipeline.compile import resolve
    from rlaif.pipeline.context import Policy, RunContext

    def serves(extra: list[str], adapter: Path | None = None) -> bool:
        c = load_run_config(PIPELINE, small_overrides(run_config, tiny_model_dir) + extra)
        policy = Policy(Path(c.policy.path), adapter)
        return RunContext(run=resolve(c), run_dir=tmp_path / "ctx", policy=policy).serves_adapters()

    assert not serves(["dpo.lora=null"])
    assert serves([])  # dpo.lora set
    assert serves(["dpo.lora=null"], adapter=tmp_path)  # a starting adapter
    assert not serves(["rounds=0"])


FINAL_ROUNDS = {
    "grpo": (
        "{max_steps: 2, num_generations: 2, per_device_train_batch_size: 4, max_completion_length: 12, "
        "learning_rate: 1.0e-3, lora: {r: 8, alpha: 16}}",
        "rewards/instructions_fraction/mean",  # TRL names the column after the reward function
    ),
    "ppo": (
        "{max_steps: 2, batch_size: 2, minibatch_size: 2, ppo_epochs: 1, max_completion_length: 12, "
        "lora: {r: 8, alpha: 16}}",
        "score",  # our PPO's raw reward, before KL shaping
    ),
}


@pytest.mark.parametrize("kind", sorted(FINAL_ROUNDS))
def test_a_final_rl_round_is_rewarded_by_the_instruction_checker(
    run_config, tiny_model_dir, vllm_engine, kind, capsys
):
    """``final.reward: verifier`` on instruction prompts: each rollout is checked against its prompt's
    instructions by code, and that verdict is the reward (no judge, no reward model). Its progress
    line is named after the stage (``final/train``), as the DPO and SFT stages' are, not the trainer."""
    from rlaif.train.common import read_metrics

    options, reward_key = FINAL_ROUNDS[kind]
    overrides = small_overrides(run_config, tiny_model_dir) + [
        "rounds=0",
        "prompts.limit=4",
        "eval.instructions.prompts.limit=4",
        f"final.kind={kind}",
        "final.reward=verifier",
        "final.reward_kind=fraction",
        f"final.options={options}",
    ]
    cfg = load_run_config(PIPELINE, overrides)
    runner = Runner(cfg, engine=vllm_engine)
    runner.run()
    assert "final/train" in runner.executed and "final/eval" in runner.executed
    stage = cfg.run_dir() / "final" / "train"
    trained = [json.loads(line) for line in (stage / "prompts.jsonl").read_text().splitlines()]
    assert len(trained) == 4 and all(r["metadata"]["instructions"] for r in trained)
    steps = [m for m in read_metrics(stage / "metrics.jsonl") if reward_key in m]
    assert len(steps) == 2  # two steps, each rewarded by the checker
    assert all(0.0 <= m[reward_key] <= 1.0 for m in steps)
    assert all(m.get("reward_none", 0) == 0 for m in steps)  # every rollout had instructions to check
    err = capsys.readouterr().err.splitlines()
    unit = "iterations" if kind == "ppo" else "steps"
    progress = [x for x in err if x.startswith("  final/train: ")]
    assert progress and progress[-1].startswith(f"  final/train: 2/2 {unit}, "), err
    assert not [x for x in err if x.startswith(f"{kind}: ")], err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dpo.lora={r: 8}"], "cannot do on an engine serving LoRA adapters"),
        (["final.kind=grpo"], "cannot do on an engine serving LoRA adapters"),
        (["engine.kind=openai", "engine.url=http://127.0.0.1:9"], "needs engine.kind=vllm"),
    ],
)
def test_scoring_candidates_where_the_engine_cannot_score_are_refused_before_the_run(overrides, message):
    from rlaif.errors import ConfigError
    from rlaif.pipeline.compile import resolve

    with pytest.raises(ConfigError, match=message):
        resolve(load_run_config(PIPELINE, overrides))
    resolve(load_run_config(PIPELINE, [*overrides, "feedback.options.num_generations=1"]))  # no scoring: fine


def test_a_missing_heldout_file_is_refused_before_the_run(tmp_path):
    from rlaif.errors import ConfigError
    from rlaif.pipeline.preflight import read_inputs

    missing = tmp_path / "nope.jsonl"
    cfg = load_run_config(PIPELINE, [f"eval.instructions.prompts.path={missing}"])
    with pytest.raises(ConfigError, match=r"'eval.instructions.prompts.path': file not found: .*nope.jsonl"):
        read_inputs(cfg)
    shipped = read_inputs(load_run_config(PIPELINE))
    assert shipped["eval.instructions.prompts"]["records"] == 400


def test_eval_prompts_without_instructions_are_an_error(tmp_path, run_config, tiny_model_dir, vllm_engine):
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"id": "a", "prompt": "Hi"}\n')
    overrides = small_overrides(run_config, tiny_model_dir) + [f"eval.instructions.prompts.path={plain}"]
    with pytest.raises(
        StageFailed, match="round_0/eval: eval.instructions.prompts: no prompt in .* has 'instructions'"
    ):
        Runner(load_run_config(PIPELINE, overrides), engine=vllm_engine).run()


SMOLLM2 = Path(os.environ.get("RLAIF_SMOLLM2", REPO / "models" / "smollm2-135m-instruct"))


@pytest.mark.slow
@pytest.mark.skipif(not (SMOLLM2 / "config.json").is_file(), reason="SmolLM2 not converted (make real-model)")
def test_smollm2_instruction_loop_improves_the_heldout_pass_rate(tmp_path):
    """The full shipped run (~14 min on 2 cores); the README reports its figures. The gain must be
    significant on the paired held-out prompts, not just a higher rate."""
    cfg = load_run_config(PIPELINE, [f"output_dir={tmp_path / 'runs'}", f"policy.path={SMOLLM2}"])
    metrics = Runner(cfg).run()
    before, after = metrics["rounds"][0], metrics["rounds"][-1]
    change = after["instruction_change_vs_start"]
    print(before["instruction_pass_rate"], after["instruction_pass_rate"], change)
    assert after["instruction_pass_rate"] > before["instruction_pass_rate"]
    assert change["gained"] > change["lost"] and change["sign_test_p"] < 0.01
