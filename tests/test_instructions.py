"""Verifiable instructions: every check passes and fails where it should, the prompt sets are
deterministic with a clean held-out split, and the shipped sets are exactly what the builder writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif.errors import ConfigError, RecordError
from rlaif.instructions import (
    KINDS,
    build_prompt_sets,
    check,
    check_all,
    describe,
    load_tasks,
    pass_summary,
    wilson_interval,
    write_prompt_sets,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "prompts" / "instructions"

# (kind, value, a reply that follows it, a reply that does not)
CASES = [
    ("lowercase", None, "the moon is bright tonight.", "The moon is bright tonight."),
    ("uppercase", None, "THE MOON IS BRIGHT, 100%!", "THE MOON is bright."),
    ("max_words", 5, "It's a big bright moon.", "The moon is a big bright rock."),
    ("keyword", "because", "We sleep because we are tired.", "We sleep to rest; becauseful is not a word."),
    ("no_commas", None, "Sleep helps the body rest.", "Sleep helps the body, and the mind."),
    ("bullets", 3, "Tips:\n- one\n* two\n  - three", "- one\n- two\nthree"),
    ("ends_with", "That is all.", "Drink water. That is all.  \n", "That is all. Drink water."),
    ("starts_with", "Yes", "  Yes, it is.", "Yesterday it rained."),
    ("quoted", None, '"The moon is bright."', 'The "moon" is bright.'),
    ("title", None, "<<The Moon>>\nIt is bright.", "<The Moon>\nIt is bright."),
]


def test_every_kind_has_a_pass_and_a_fail_case():
    assert {c[0] for c in CASES} == set(KINDS)


@pytest.mark.parametrize("kind,value,good,bad", CASES, ids=[c[0] for c in CASES])
def test_check_passes_and_fails(kind, value, good, bad):
    spec = {"kind": kind, "value": value}
    assert check(good, spec) is True
    assert check(bad, spec) is False
    assert check("", spec) is False  # an empty reply never follows an instruction


def test_check_all_needs_every_instruction():
    specs = [{"kind": "lowercase", "value": None}, {"kind": "max_words", "value": 3}]
    assert check_all("tiny moon here", specs)
    assert not check_all("a tiny moon is here", specs)
    assert not check_all("Tiny moon", specs)


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"kind": "shouting"}, "unknown instruction kind 'shouting'"),
        ({"kind": "max_words", "value": "ten"}, "needs a value of type int"),
        ({"kind": "max_words", "value": True}, "needs a value of type int"),
        ({"kind": "keyword", "value": "x", "extra": 1}, "unknown instruction field(s) ['extra']"),
        ("lowercase", "must be a mapping with a 'kind'"),
    ],
)
def test_malformed_instructions_are_errors_naming_the_record(spec, message):
    with pytest.raises(RecordError, match="prompt p7") as err:
        check("text", spec, where="prompt p7")
    assert message in str(err.value)


def test_describe_words_the_value():
    assert describe({"kind": "max_words", "value": 20}) == "Answer in at most 20 words."
    assert '"because"' in describe({"kind": "keyword", "value": "because"})


def test_builder_is_deterministic_balanced_and_splits_by_request():
    tasks = load_tasks(REPO / "prompts" / "instruction_tasks.yaml")
    train, held = build_prompt_sets(tasks, seed=0, heldout_tasks=20, train_per_task=3, heldout_per_task=6)
    assert (train, held) == build_prompt_sets(
        tasks, seed=0, heldout_tasks=20, train_per_task=3, heldout_per_task=6
    )
    assert build_prompt_sets(tasks, seed=1, heldout_tasks=20, heldout_per_task=6)[1] != held
    assert len(train) == 3 * (len(tasks) - 20) and len(held) == 6 * 20
    # no held-out request appears in training, with any instruction
    assert not {r["task"] for r in train} & {r["task"] for r in held}
    assert len({r["task"] for r in held}) == 20
    # every kind equally often; distinct kinds within one request; ids unique
    for rows, per_kind in ((train, len(train) // len(KINDS)), (held, len(held) // len(KINDS))):
        counts = {k: sum(r["instructions"][0]["kind"] == k for r in rows) for k in KINDS}
        assert set(counts.values()) == {per_kind}
        assert len({r["id"] for r in rows}) == len(rows)
    for task in {r["task"] for r in held}:
        kinds = [r["instructions"][0]["kind"] for r in held if r["task"] == task]
        assert len(set(kinds)) == len(kinds) == 6
    # the prompt is the request followed by the instruction's own wording
    r = held[0]
    assert r["prompt"] == f"{r['task']} {describe(r['instructions'][0])}"


def test_shipped_prompt_sets_are_what_the_builder_writes(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "rlaif.instructions", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "wrote 270 train prompts" in res.stdout and "400 held-out prompts" in res.stdout
    for name in ("train.jsonl", "heldout.jsonl"):
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name


def test_shipped_sets_load_as_jsonl_prompts_with_instructions_in_metadata():
    from rlaif.feedback.prompts_io import load_prompts

    records = load_prompts(SHIPPED / "heldout.jsonl", format="jsonl")
    assert len(records) == 400  # 40 held-out requests x every one of the 10 kinds
    assert all(r.metadata["instructions"] and r.messages[-1].role == "user" for r in records)


def test_bad_task_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "tasks.yaml"
    bad.write_text("tasks: [a, a]\n")
    with pytest.raises(ConfigError, match="duplicate task"):
        load_tasks(bad)
    bad.write_text("tasks: [a, '']\n")
    with pytest.raises(ConfigError, match=r"tasks\[2\] must be a non-empty string"):
        load_tasks(bad)
    with pytest.raises(ConfigError, match="heldout_tasks must be between 1 and 1"):
        build_prompt_sets(["a", "b"], heldout_tasks=2)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlaif.instructions",
            str(tmp_path / "o"),
            "--tasks",
            str(tmp_path / "none.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and res.stdout.startswith("error: ") and "Traceback" not in res.stderr


def test_wilson_interval_and_summary():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    lc, mw = {"kind": "lowercase", "value": None}, {"kind": "max_words", "value": 5}
    s = pass_summary([([lc], True), ([lc], False), ([mw], True), ([], False)])
    assert s["instruction_pass_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["instruction_samples"] == 3 and s["instruction_unscored"] == 1
    assert s["instruction_pass_by_kind"] == {"lowercase": 0.5, "max_words": 1.0}


def test_write_prompt_sets_round_trips(tmp_path):
    train, held = build_prompt_sets([f"Task {i}." for i in range(6)], seed=3, heldout_tasks=2)
    paths = write_prompt_sets(tmp_path, train, held)
    assert [json.loads(line) for line in paths[1].read_text().splitlines()] == held


def test_the_instruction_checker_rewards_a_real_grpo_step(tiny_model_dir, tmp_path):
    """The verifier reward (rlaif.train.rewards.verifier_reward) on the instruction task, in one real TRL
    GRPO step: the rollouts' ``instructions`` column reaches the checker, each rollout gets a verdict."""
    from rlaif.records import Message, PromptRecord
    from rlaif.tasks.instruction import InstructionTask
    from rlaif.train.common import read_metrics
    from rlaif.train.configs import GRPOConfig, PolicySpec
    from rlaif.train.grpo import run_grpo
    from rlaif.train.rewards import verifier_reward

    specs = [{"kind": "lowercase"}, {"kind": "no_commas"}]
    prompts = [
        PromptRecord(
            id=f"q{i}",
            messages=[Message(role="user", content=f"Say something about {i}.")],
            metadata={"instructions": specs},
        )  # fmt: skip
        for i in range(4)
    ]
    reward = verifier_reward(InstructionTask(), "fraction")
    cfg = GRPOConfig(
        output_dir=tmp_path / "grpo", policy=PolicySpec(path=tiny_model_dir), prompts=[tmp_path / "unused.jsonl"],
        num_generations=4, per_device_train_batch_size=8, max_completion_length=12, max_steps=1, learning_rate=5e-3,
    )  # fmt: skip
    result = run_grpo(cfg, prompts=prompts, reward_funcs=[reward])
    assert result.counts["steps"] == 1
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    assert "rewards/instructions_fraction/mean" in line
    assert len(reward.last_verdicts) > 0 and all(
        v.status in ("passed", "failed") for v in reward.last_verdicts
    )
    assert {v.score for v in reward.last_verdicts} <= {0.0, 0.5, 1.0} and 0.0 <= line["reward"] <= 1.0


def test_require_answer_reads_each_rollouts_request_in_a_real_grpo_step(tiny_model_dir, tmp_path):
    """``final.require_answer``'s reward in one real TRL GRPO step: the prompts' ``task`` column reaches
    the checker, and every rollout that does not answer its request is failed as ``not_answered``."""
    from rlaif.instructions import answers_request
    from rlaif.records import Message, PromptRecord
    from rlaif.tasks.base import completion_text
    from rlaif.tasks.instruction import InstructionTask
    from rlaif.train.configs import GRPOConfig, PolicySpec
    from rlaif.train.grpo import run_grpo
    from rlaif.train.rewards import verifier_reward

    specs = [{"kind": "lowercase"}]
    prompts = [
        PromptRecord(
            id=f"q{i}",
            messages=[
                Message(role="user", content=f"Describe the number {i}. Write only lowercase letters.")
            ],
            metadata={"instructions": specs, "task": f"Describe the number {i}."},
        )  # fmt: skip
        for i in range(4)
    ]
    guarded = verifier_reward(InstructionTask(require_answer=True), "fraction")
    seen: list[tuple[str, str]] = []

    def recording(prompts, completions, **columns):
        seen.extend(zip([completion_text(c) for c in completions], columns["task"], strict=True))
        return guarded(prompts=prompts, completions=completions, **columns)

    recording.__name__ = guarded.__name__
    cfg = GRPOConfig(
        output_dir=tmp_path / "grpo", policy=PolicySpec(path=tiny_model_dir), prompts=[tmp_path / "unused.jsonl"],
        num_generations=4, per_device_train_batch_size=8, max_completion_length=12, max_steps=1, learning_rate=5e-3,
    )  # fmt: skip
    assert run_grpo(cfg, prompts=prompts, reward_funcs=[recording]).counts["steps"] == 1
    assert len(seen) == len(guarded.last_verdicts) > 0
    assert {task for _, task in seen} <= {p.metadata["task"] for p in prompts}
    for (text, task), verdict in zip(seen, guarded.last_verdicts, strict=True):
        assert (verdict.status == "not_answered") == (not answers_request(text, task, specs)), text
        assert verdict.status != "not_answered" or verdict.score == 0.0


def test_instruction_pairs_is_a_verifier_gated_source_through_the_plugin_path():
    """The instruction instance of rlaif.feedback.verified: a reply that follows every instruction beats
    one that does not; a prompt whose replies all pass (or all fail alike) is dropped with its reason."""
    from rlaif.engines.scripted import ScriptedEngine
    from rlaif.feedback import run_source
    from rlaif.feedback.context import SourceContext
    from rlaif.records import Message, PromptRecord, derive_seed

    lower = [{"kind": "lowercase"}]
    prompts = [
        PromptRecord(
            id=f"p{i}",
            messages=[Message(role="user", content=f"prompt {i}")],
            metadata={"instructions": lower},
        )  # fmt: skip
        for i in range(3)
    ]
    replies = {"prompt 0": ["all lower", "Not Lower"], "prompt 1": ["ok", "fine"], "prompt 2": ["A", "B"]}
    engine = ScriptedEngine(lambda conv, index, sampling: replies[conv[-1].content][index])
    context = SourceContext(seed=4, round=2, adapter=None, chunk=0)
    spec = "rlaif.feedback.verified:instruction_pairs"
    res = run_source(spec, prompts, engine, {"k": 2, "partial_margin": None}, context)
    (pair,) = res.pairs
    assert (pair.chosen, pair.rejected, pair.round, pair.metadata["prompt_id"]) == (
        "all lower",
        "Not Lower",
        2,
        "p0",
    )
    assert res.stats.drops == {"all_passed": 1, "no_passing_candidate": 1} and res.stats.balanced
    assert {d.prompt_id: d.reason for d in res.dropped} == {"p1": "all_passed", "p2": "no_passing_candidate"}
    (_, samplings, _) = engine.calls[0]
    assert [s.seed for s in samplings] == [derive_seed(4, "verified", p.id, 0) for p in prompts]
