"""Broken problems found up front, so that they are not blamed on the samples.

A problem file can be wrong in ways no loader sees: a ``check()`` without asserts passes any answer; a
test with a NameError, or a wrong ``entry_point``, fails every answer. Where a problem has a reference
solution, two programs are run in the sandbox before any sample: the reference must pass its tests,
and a trivially wrong answer (every function of the reference returning None; for HumanEval the
prompt's function body ``return None``) must fail them.

Guarantees: a problem is reported broken only on a deterministic outcome (the reference fails,
errors, does not parse, or the None answer passes); a reference that times out, is killed or meets a
sandbox error says nothing about the problem and is not reported; every reason names what happened.
Non-guarantees: problems without a reference solution are not checked; a problem whose right answer
really is None for every test is reported broken (the reason says why, so it can be checked by hand);
MBPP+-style problems compare with their reference's own outputs, so only the None answer is checked.
Outcomes can be remembered across runs (:mod:`rlaif.code.check_cache`; ``rlaif eval-code`` does by
default), so a problems file is checked once per content, limits and rlaif version.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Sequence

from rlaif.records import CodeProblem, ExecutionResult

from .check_cache import CheckCache, pool_setting, problem_key
from .jobs import JobBuilder, prepare_expected

INCONCLUSIVE = {"timeout", "killed", "sandbox_error"}


def none_answer(problem: CodeProblem) -> str | None:
    """A completion that returns None wherever the reference computes something (None: cannot build)."""
    if problem.source_format == "humaneval":
        return ("" if problem.prompt.endswith("\n") else "\n") + "    return None\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(problem.reference_solution or "")
    except SyntaxError:
        return None
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if problem.entry_point and problem.entry_point not in names:
        names.append(problem.entry_point)
    return "".join(f"def {n}(*args, **kwargs):\n    return None\n\n" for n in names) or None


def _why_reference(r: ExecutionResult) -> str:
    detail = (r.diagnostics or "").strip().splitlines()
    last = f": {detail[-1][:200]}" if detail else ""
    return f"its reference solution does not pass its own tests ({r.status}, {r.tests_passed}/{r.tests_total}{last})"


def find_bad_problems(
    problems: Sequence[CodeProblem], pool, cache: CheckCache | None = None, build: JobBuilder | None = None
) -> dict[str, str]:
    """{task_id: reason} for each problem with a reference solution whose tests are broken.

    With a ``cache`` (:mod:`rlaif.code.check_cache`), problems checked before with the same content,
    limits and code are not run again, and the conclusive outcomes of this run are stored. ``build``:
    a :class:`~rlaif.code.jobs.JobBuilder` to share the problems' tests with the caller's jobs."""
    bad: dict[str, str] = {}
    checked = [p for p in problems if p.reference_solution]
    keys: dict[str, str] = {}
    if cache is not None:
        setting, todo = pool_setting(pool), []
        for p in checked:
            keys[p.task_id] = problem_key(p, setting)
            found, reason = cache.lookup(keys[p.task_id])
            if not found:
                todo.append(p)
            elif reason is not None:
                bad[p.task_id] = reason
        checked = todo
    prepare_expected(checked, pool)
    jobs, owners, build = [], [], build or JobBuilder()
    for p in checked:
        if not p.inputs:  # MBPP+ expected outputs come from the reference: it agrees with itself
            jobs.append(build(p, p.reference_solution or ""))
            owners.append((p, "reference"))
        wrong = none_answer(p)
        if wrong is not None:
            jobs.append(build(p, wrong))
            owners.append((p, "none"))
    inconclusive: set[str] = set()
    for (p, kind), r in zip(owners, pool.run(jobs) if jobs else [], strict=True):
        if r.status in INCONCLUSIVE:
            inconclusive.add(p.task_id)
        if p.task_id in bad or r.status in INCONCLUSIVE:
            continue
        if kind == "reference" and not r.passed:
            bad[p.task_id] = _why_reference(r)
        elif kind == "none" and r.passed:
            bad[p.task_id] = (
                "an answer that returns None passes its tests (do the tests assert anything about the result?)"
            )
    if cache is not None:  # a broken problem is broken whatever else timed out; a sound one only if all ran
        cache.store((keys[p.task_id], bad.get(p.task_id)) for p in checked
                    if p.task_id in bad or p.task_id not in inconclusive)  # fmt: skip
    return bad
