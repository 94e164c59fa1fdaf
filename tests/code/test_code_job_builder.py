"""``JobBuilder`` makes each problem's tests once for all its samples, and its jobs are exactly
``build_job``'s (the same tests, program and id); run for real, they pass and fail alike."""

from __future__ import annotations

from rlaif.code import jobs as jobs_module
from rlaif.code.jobs import JobBuilder, build_job
from rlaif.code.problems import load_problems


def test_the_tests_are_made_once_per_problem_and_the_jobs_are_the_same(assets, monkeypatch, code_pool):
    problems = load_problems(assets / "humaneval_mini.jsonl")
    completions = [p.reference_solution for p in problems] + ["    return None\n"] * len(problems)
    plain = [
        build_job(p, c, sample_index=i)
        for i, c in enumerate(completions)
        for p in [problems[i % len(problems)]]
    ]
    made = []
    real = jobs_module.problem_tests
    monkeypatch.setattr(jobs_module, "problem_tests", lambda p: made.append(p.task_id) or real(p))
    build = JobBuilder()
    shared = [build(problems[i % len(problems)], c, sample_index=i) for i, c in enumerate(completions)]
    assert sorted(made) == sorted(p.task_id for p in problems)  # once each, for two samples each
    assert shared == plain
    assert shared[0].tests is not shared[len(problems)].tests  # each job has its own list
    results = code_pool.run(shared)
    assert [r.passed for r in results] == [True] * len(problems) + [False] * len(problems)
