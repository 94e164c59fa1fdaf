"""RLCF repair pairs: the policy's failing programs are repaired after it is told what the sandbox
reported, and a fix that passes every test beats the program it fixes. Scripted answers, real
sandbox executions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rlaif.code.jobs import CODE_STOP, extract_code, replace_code
from rlaif.code.problems import load_problems
from rlaif.engines.scripted import ScriptedEngine
from rlaif.feedback import RLCFConfig, run_source
from rlaif.feedback.code_repair import visible_test_feedback
from rlaif.feedback.context import SourceContext
from rlaif.records import derive_seed

WRONG = "Here is the function:\n```python\ndef {name}(*args):\n    return None\n```\nIt returns the answer."


def _fixture(problems):
    """Candidates: index 0 is right for the first problem only, the rest return None; a repair
    request gets the reference (attempt 0) or the same wrong program (attempt 1)."""
    refs = {p.task_id: p.reference_solution for p in problems}
    names = {p.task_id: p.tests[0].split("(")[0].replace("assert", "").strip() for p in problems}

    def responder(conversation, index, sampling):
        task = next(p for p in problems if p.prompt in conversation[0].content)
        wrong = WRONG.format(name=names[task.task_id])
        if len(conversation) == 3:  # the repair turn
            return f"```python\n{refs[task.task_id]}\n```\n\n" if index == 0 else wrong
        if task is problems[0] and index == 0:
            return f"```python\n{refs[task.task_id]}\n```\n\n"
        return wrong

    return ScriptedEngine(responder)


def test_failing_programs_are_repaired_and_the_fix_beats_them(code_pool, assets: Path):
    problems = load_problems(assets / "mbpp_mini.jsonl")[:3]
    engine = _fixture(problems)
    context = SourceContext(seed=5, round=2, adapter=None, chunk=0)
    options = {"k": 2, "partial_margin": None, "repair": {"attempts": 2}}
    res = run_source("rlcf", problems, engine, options, context, sandbox=code_pool)

    assert res.stats.balanced and res.stats.pairs_out == 3  # every problem has a pair now
    sampled = [p for p in res.pairs if p.metadata["pairing"] == "pass_vs_fail"]
    repaired = [p for p in res.pairs if p.metadata["pairing"] == "repair_vs_fail"]
    assert [p.metadata["task_id"] for p in sampled] == [problems[0].task_id]
    assert sorted(p.metadata["task_id"] for p in repaired) == sorted(p.task_id for p in problems)
    for pair in repaired:
        # the fix keeps the failing answer's words: only the code block differs
        assert pair.rejected.startswith("Here is the function:\n```python\n")
        assert pair.chosen.startswith("Here is the function:\n```python\n")
        assert pair.chosen.endswith("```\nIt returns the answer.")
        problem = next(p for p in problems if p.task_id == pair.metadata["task_id"])
        assert extract_code(pair.chosen).strip() == problem.reference_solution.strip()
        assert (
            pair.metadata["chosen"]["status"] == "passed" and pair.metadata["rejected"]["status"] != "passed"
        )
        assert pair.margin == 1.0 and len(pair.execution_ids) == 2
        assert "the example in the problem fails" in pair.metadata["repair_request"]
    # the repair requests: one per failing program (the closest to passing), n = attempts, seeded
    (count, samplings, _), (rcount, rsamplings, _) = engine.calls
    assert count == 3 and rcount == 3
    assert {(s.n, tuple(s.stop)) for s in rsamplings} == {(2, CODE_STOP)}
    assert [s.seed for s in rsamplings] == [
        derive_seed(5, "rlcf_repair", f"{p.task_id}#1", 0) for p in problems[:1]
    ] + [derive_seed(5, "rlcf_repair", f"{p.task_id}#0", 0) for p in problems[1:]]
    rep = res.code_stats.repair
    # attempt 1 repeats the failing program: counted as unchanged, never executed
    assert rep["programs"] == 3 and rep["repairs"] == 6 and rep["unchanged"] == 3
    assert rep["executions"] == rep["passed"] == rep["pairs"] == 3 and rep["problems_with_pair"] == 3
    assert len(res.executions) == res.code_stats.executions + 3
    assert sum(1 for e in res.executions if "repair_of" in e.metadata) == 3


def test_repair_pairs_alone_and_only_for_unsolved_problems(code_pool, assets: Path):
    problems = load_problems(assets / "mbpp_mini.jsonl")[:3]
    context = SourceContext(seed=5, round=1, adapter=None, chunk=0)
    options = {
        "k": 2,
        "partial_margin": None,
        "repair": {"problems": "unsolved", "keep_sampled_pairs": False},
    }
    res = run_source("rlcf", problems, _fixture(problems), options, context, sandbox=code_pool)

    assert {p.metadata["pairing"] for p in res.pairs} == {"repair_vs_fail"}
    assert sorted(p.metadata["task_id"] for p in res.pairs) == sorted(p.task_id for p in problems[1:])
    # the solved problem lost its sampled pair and was not repaired: a counted, named drop
    assert res.stats.balanced and res.stats.drops == {"sampled_pairs_not_kept": 1}
    assert [d.prompt_id for d in res.dropped] == [problems[0].task_id]
    assert res.code_stats.repair["programs"] == 2


def test_a_problem_whose_repairs_all_fail_is_dropped_as_such_with_what_sampling_made_of_it(code_pool, assets):
    problems = load_problems(assets / "mbpp_mini.jsonl")[:3]
    names = {p.task_id: p.tests[0].split("(")[0].replace("assert", "").strip() for p in problems}
    sampler = _fixture(problems).responder

    def no_fix(conversation, index, sampling):
        task = next(p for p in problems if p.prompt in conversation[0].content)
        if len(conversation) == 3:  # every repair is another wrong program
            return f"```python\ndef {names[task.task_id]}(*args):\n    return {index + 1}\n```\n"
        return sampler(conversation, index, sampling)

    context = SourceContext(seed=5, round=1, adapter=None, chunk=0)
    options = {"k": 2, "partial_margin": None, "repair": {"attempts": 2}}
    res = run_source("rlcf", problems, ScriptedEngine(no_fix), options, context, sandbox=code_pool)

    assert res.code_stats.repair["programs"] == 3 and res.code_stats.repair["passed"] == 0
    # the first problem keeps its sampled pair; the other two (both samples the same wrong program) were
    # repaired in vain
    assert [p.metadata["task_id"] for p in res.pairs] == [problems[0].task_id]
    assert res.stats.balanced and res.stats.drops == {"no_passing_repair": 2}
    assert {(d.prompt_id, d.detail) for d in res.dropped} == {
        (p.task_id, "sampled: single_distinct_candidate") for p in problems[1:]
    }


def test_the_repairer_sees_the_shown_example_in_full_and_hidden_tests_by_count_only(code_pool, assets):
    problem = load_problems(assets / "mbpp_mini.jsonl")[3]  # find_Volume: (l*b*h)/2
    wrong_everywhere = "def find_Volume(l, b, h):\n    return l * b * h\n"
    wrong_hidden = "def find_Volume(l, b, h):\n    return 240 if l == 10 else -1\n"
    broken = "def find_Volume(l, b, h)\n    return 0\n"
    copied_assert = wrong_everywhere + "\nassert find_Volume(10,8,6) == 240\n"  # fails while loading
    from rlaif.code.jobs import build_job, program_for

    programs = (wrong_everywhere, wrong_hidden, broken, copied_assert)
    results = code_pool.run([build_job(problem, c, sample_index=i) for i, c in enumerate(programs)])
    shown, hidden, load, copied = (
        visible_test_feedback(problem, r, program_for(problem, c))
        for r, c in zip(results, programs, strict=True)
    )
    assert "`assert find_Volume(10,8,6) == 240`" in shown and "got 480" in shown
    assert hidden == "it passes the example in the problem but fails 2 of 2 other tests (wrong answer x2)"
    assert "6" not in hidden.replace("x2", "")  # no hidden input or expected value
    assert load.startswith("it fails while loading (syntax error)")
    assert load.endswith("; line 1 is `def find_Volume(l, b, h)`")
    # a load failure names the program's line; the repairer is shown which of its lines that is
    assert copied == (
        "it fails while loading (wrong answer): line 4: AssertionError; "
        "line 4 is `assert find_Volume(10,8,6) == 240`"
    )
    assert (
        visible_test_feedback(problem, results[3])
        == "it fails while loading (wrong answer): line 4: AssertionError"
    )


def test_replace_code_keeps_the_answer_around_the_block():
    assert replace_code("Hi\n```python\nx = 1\n```\nBye", "y = 2") == "Hi\n```python\ny = 2\n```\nBye"
    assert replace_code("Hi\n```python\nx = 1\n", "y = 2\n") == "Hi\n```python\ny = 2\n```"  # closed
    assert replace_code("x = 1", "y = 2") == "```python\ny = 2\n```"


def test_repair_options_are_checked():
    with pytest.raises(ValidationError, match="attempts"):
        RLCFConfig.model_validate({"repair": {"attempts": 0}})
    with pytest.raises(ValidationError, match="problems"):
        RLCFConfig.model_validate({"repair": {"problems": "some"}})
    with pytest.raises(ValidationError, match="extra"):
        RLCFConfig.model_validate({"repair": {"tries": 2}})
    # the template is checked when the run is validated, before any program is sampled
    with pytest.raises(ValidationError, match="no template named 'nope'"):
        RLCFConfig.model_validate({"repair": {"template": "nope"}})
    with pytest.raises(ValidationError, match="which this step does not supply .it supplies feedback."):
        RLCFConfig.model_validate({"repair": {"template": "cai_revision"}})


def test_the_feedback_stage_reports_the_repair_counts(tmp_path, code_pool, assets: Path):
    """The stage summary a run prints and records names how many programs were repaired and paired."""
    from rlaif.pipeline.feedback_stage import _chunk_record, _code_summary
    from rlaif.records import PreferencePair

    problems = load_problems(assets / "mbpp_mini.jsonl")[:3]
    context = SourceContext(seed=5, round=1, adapter=None, chunk=0)
    options = {"k": 2, "partial_margin": None, "repair": {"attempts": 2}}
    chunks = [
        _chunk_record(
            run_source("rlcf", problems[:i], _fixture(problems), options, context, sandbox=code_pool)
        )
        for i in (1, 3)
    ]
    pairs = [PreferencePair.model_validate(p) for c in chunks for p in c["pairs"]]
    summary = _code_summary(tmp_path, chunks, pairs)
    assert summary.counts["repair_programs"] == 4 and summary.counts["repair_repairs"] == 8
    assert summary.counts["repair_passed"] == summary.counts["repair_pairs"] == 4
    assert summary.counts["pairs_out"] == len(pairs) == 6  # 2 sampled + 4 repair pairs
    assert summary.stats["repair"]["unchanged"] == 4
    # where the time went, summed over the chunks: the engine's and the sandbox's share, each turn
    seconds = summary.stats["seconds"]
    assert set(seconds) == {"generate", "verify", "repair_generate", "repair_verify"}
    for step, total in seconds.items():
        assert total == pytest.approx(sum(c["code_stats"]["seconds"][step] for c in chunks))
    assert seconds["verify"] > 0 and seconds["repair_verify"] > 0  # the real sandbox ran, each time
