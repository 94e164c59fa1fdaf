"""``final.prompts: varied``: the final round trains only on the problems whose programs in the last
round's feedback earned different rewards (a group of rollouts that all score alike gives GRPO no
gradient); the rule that refuses runs where no feedback could tell; the stage on real executions."""

from __future__ import annotations

import pytest
import varied_source  # the plug-in source next to this test

from rlaif.errors import ConfigError
from rlaif.pipeline.compile import compile_run
from rlaif.pipeline.final_round import reward_spread, varied_problems
from rlaif.records import ExecutionResult, read_jsonl, write_jsonl
from rlaif.tasks.catalog import problem_set

VARIED = {"kind": "grpo", "reward": "sandbox", "prompts": "varied"}


def _refused(run_config, *fragments, **changes):
    with pytest.raises(ConfigError) as info:
        compile_run(run_config(**changes))
    message = str(info.value)
    assert "'final.prompts'" in message and "use final.prompts: all" in message
    for fragment in fragments:
        assert fragment in message


def test_varied_prompts_need_a_round_whose_feedback_ran_programs(run_config):
    code = {"prompts": {"kind": "demo_code", "split": "train", "limit": 3}}
    _refused(run_config, "rounds: 0", final=VARIED, rounds=0, feedback={"source": "rlcf"}, **code)
    _refused(run_config, "'rlcd' runs no programs", final=VARIED, feedback={"source": "rlcd"}, **code)
    judged = {**VARIED, "reward": "judge"}
    _refused(run_config, "final.reward=judge", final=judged, feedback={"source": "rlcf"}, **code)
    plan = compile_run(run_config(final=VARIED, feedback={"source": "rlcf"}, **code))
    assert plan.config.final.prompts == "varied"


def _executions(tmp_path, pairs):
    """Real sandbox executions of (problem, program) pairs, written as a feedback stage writes them."""
    from rlaif.tasks.code import CodeTask

    problems = [p for p, _ in pairs]
    task = CodeTask(problems)
    try:
        verdicts = task.verify_many(pairs)
    finally:
        task.close()
    path = tmp_path / "executions.jsonl"
    write_jsonl(path, [v.evidence for v in verdicts])
    return path


def test_a_problem_is_kept_when_its_programs_earned_different_rewards(tmp_path):
    a, b, c = problem_set("demo_code")("train")[:3]
    right = lambda p: varied_source._fenced(p.reference_solution)  # noqa: E731
    wrong = varied_source.wrong_program
    path = _executions(tmp_path, [(a, right(a)), (a, wrong(a)), (b, wrong(b)), (b, wrong(b)), (b, "```python\nx = (\n```")])  # fmt: skip
    assert [r.status for r in read_jsonl(path, ExecutionResult)][:3] == ["passed", "failed", "failed"]
    # fraction: b's wrong programs and its syntax error all pass no test; coderl tells them apart
    assert reward_spread(path, "fraction") == {a.task_id: {1.0, 0.0}, b.task_id: {0.0}}
    kept, counts = varied_problems([a, b, c], path, "fraction")
    assert kept == [a] and counts == {"prompts": 1, "prompts_same_reward": 1, "prompts_not_run": 1}
    kept, _ = varied_problems([a, b, c], path, "coderl")
    assert kept == [a, b]
    with pytest.raises(ConfigError, match=r"no problem's programs in .*executions.jsonl earned different"):
        varied_problems([b, c], path, "binary")


def test_a_runs_final_round_trains_on_the_problems_its_last_feedback_found_varied(
    tmp_path, tiny_model_dir, vllm_engine, capsys
):
    """For real: round 1's feedback runs programs in the run's sandbox pool (a plug-in source: the
    tiny model never passes a test), and the final GRPO round trains on the problems they split."""
    from rlaif.config import RunConfig
    from rlaif.pipeline.runner import Runner
    from rlaif.records import PromptRecord

    cfg = RunConfig.model_validate(
        {
            "name": "varied",
            "output_dir": str(tmp_path / "runs"),
            "policy": {"path": str(tiny_model_dir)},
            "prompts": {"kind": "demo_code", "split": "train", "limit": 3},
            "feedback": {"source": "varied_source:reference_and_wrong"},
            "rounds": 1,
            "dpo": {"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 128},
            "final": {**VARIED, "options": {"num_generations": 2, "per_device_train_batch_size": 2,
                                            "max_steps": 1, "max_completion_length": 8}},
        }
    )  # fmt: skip
    runner = Runner(cfg, engine=vllm_engine)
    runner.run()
    problems = problem_set("demo_code")("train")[:3]
    trained = read_jsonl(cfg.run_dir() / "final" / "train" / "prompts.jsonl", PromptRecord)
    assert [r.id for r in trained] == [p.task_id for p in problems[1:]]  # the first earned one reward
    counts = runner.summaries["final/train"].counts
    assert (counts["prompts"], counts["prompts_same_reward"], counts["prompts_not_run"]) == (2, 1, 0)
    assert counts["steps"] == 1
    assert "2 of 3 problems kept" in capsys.readouterr().err  # told on the run's own channel

    again = Runner(cfg, engine=vllm_engine)
    again.run()
    assert again.executed == []
