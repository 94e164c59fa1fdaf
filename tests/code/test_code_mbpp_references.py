"""Every MBPP reference solution passes its tests in the sandbox, and a corrupted copy of it fails.

The corruption wraps the tested function so that it returns a different value of the same kind
(``not r``, ``r + 1``, an extra element, ...), so every test's expected value is missed. The default
suite runs an evenly spread sample; the full 974 run under ``-m slow``.
"""

from __future__ import annotations

import ast
import warnings

import pytest

from rlaif.code.jobs import build_job
from rlaif.code.problems import load_problems

CORRUPT = """

_rlaif_original = {name}


def _rlaif_corrupt(r):
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float, complex)):
        return r + 1
    if isinstance(r, str):
        return r + "\\x00"
    if isinstance(r, list):
        return r + [object()]
    if isinstance(r, tuple):
        return r + (object(),)
    if isinstance(r, dict):
        return {{**r, object(): 1}}
    if isinstance(r, (set, frozenset)):
        return set(r) | {{object()}}
    return object()


def {name}(*args, **kwargs):
    return _rlaif_corrupt(_rlaif_original(*args, **kwargs))
"""


def function_under_test(problem) -> str:
    """The first function defined by the reference solution that the first test calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # some references have invalid escapes
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(problem.reference_solution)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    for node in ast.walk(ast.parse(problem.tests[0])):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
            return node.func.id
    raise AssertionError(f"task {problem.task_id}: no tested function found")


def check_references(pool, problems) -> None:
    refs = [build_job(p, p.reference_solution, sample_index=0) for p in problems]
    bad = [build_job(p, p.reference_solution + CORRUPT.format(name=function_under_test(p))) for p in problems]
    results = pool.run(refs + bad)
    ref_results, bad_results = results[: len(problems)], results[len(problems) :]
    failing_refs = [(r.task_id, r.status, r.diagnostics) for r in ref_results if not r.passed]
    assert failing_refs == [], failing_refs
    passing_corrupt = [r.task_id for r in bad_results if r.passed or r.tests_passed == r.tests_total]
    assert passing_corrupt == [], passing_corrupt
    assert all(r.tests_total == len(p.tests) for r, p in zip(ref_results, problems, strict=True))


@pytest.fixture(scope="module")
def mbpp(shared_data):
    return load_problems(shared_data / "mbpp" / "mbpp.jsonl")


def test_sample_of_references_pass_and_corrupted_copies_fail(code_pool, mbpp):
    check_references(code_pool, mbpp[::12])  # 82 tasks spread over all splits


@pytest.mark.slow
def test_all_974_references_pass_and_corrupted_copies_fail(code_pool, mbpp):
    check_references(code_pool, mbpp)


def test_mbpp_test_setup_code_is_run(code_pool, mbpp):
    with_setup = [p for p in mbpp if p.setup_code.strip()]
    assert with_setup, "MBPP has tasks with test_setup_code"
    check_references(code_pool, with_setup)
