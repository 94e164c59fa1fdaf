"""MBPP+: expected outputs come from the reference solution run in the sandbox; candidates are judged
on every base and plus input (with EvalPlus's float tolerance and special oracles)."""

from __future__ import annotations

import pytest

from rlaif.code.jobs import build_job, prepare_expected
from rlaif.code.problems import MBPP_PLUS_NOT_NONE, load_problems


@pytest.fixture(scope="module")
def mbppplus(shared_data):
    return load_problems(shared_data / "evalplus" / "MbppPlus-v0.2.0.jsonl.gz")


def _pick(problems, n=12):
    special = [
        p for p in problems if p.atol or p.entry_point in MBPP_PLUS_NOT_NONE or p.task_id == "Mbpp/793"
    ]
    return list({p.task_id: p for p in problems[:: len(problems) // n] + special[:6]}.values())


RESOURCE_LIMITS = ("MemoryError", "too many elements", "timeout", "too large")


def check_mbppplus(pool, problems) -> dict[str, list[str]]:
    failures = prepare_expected(problems, pool)
    # a reference may only fail where its own output is beyond the sandbox's limits (e.g. Mbpp/255
    # asks for all 1.6 million combinations of 5 colours taken 77 at a time)
    other = {t: r for t, r in failures.items() if not all(any(k in x for k in RESOURCE_LIMITS) for x in r)}
    assert other == {}, other
    assert all(len(p.metadata["expected"]) == len(p.inputs) for p in problems)
    results = pool.run([build_job(p, p.reference_solution) for p in problems])
    failed = [(r.task_id, r.diagnostics) for r in results if not r.passed]
    assert failed == [], failed
    for r, p in zip(results, problems, strict=True):
        assert r.tests_total == len(p.inputs) - len(p.metadata["reference_failed"])
    return failures


def test_references_pass_on_base_and_plus_inputs(code_pool, mbppplus):
    picked = _pick(mbppplus) + [p for p in mbppplus if p.task_id in ("Mbpp/395", "Mbpp/255")]
    failures = check_mbppplus(code_pool, picked)
    assert set(failures) == {"Mbpp/255"}  # None outputs (Mbpp/395) are values, not failures


@pytest.mark.slow
def test_all_references_pass_on_base_and_plus_inputs(code_pool, mbppplus):
    check_mbppplus(code_pool, mbppplus)


def test_wrong_and_partly_right_candidates(code_pool, mbppplus):
    p = next(p for p in mbppplus if p.task_id == "Mbpp/2")  # similar_elements(t1, t2): shared items
    prepare_expected([p], code_pool)
    wrong = "def similar_elements(a, b):\n    return ()\n"
    # right only when an argument is a tuple without duplicates... i.e. sometimes
    partial = "def similar_elements(a, b):\n    return tuple(set(a) & set(b)) if len(a) < 4 else ()\n"
    r_wrong, r_partial = code_pool.run([build_job(p, wrong), build_job(p, partial)])
    assert r_wrong.status == "failed" and r_wrong.tests_passed < r_wrong.tests_total
    assert 0 < r_partial.tests_passed < r_partial.tests_total
    assert r_partial.tests_passed > r_wrong.tests_passed


def test_float_outputs_use_the_tolerance(code_pool, mbppplus):
    p = next(p for p in mbppplus if p.atol)
    prepare_expected([p], code_pool)
    nudged = p.reference_solution + (
        f"\n_orig = {p.entry_point}\n"
        f"def {p.entry_point}(*a):\n"
        "    r = _orig(*a)\n"
        "    return r + 1e-9 if isinstance(r, float) else r\n"
    )
    assert code_pool.run_one(build_job(p, nudged)).passed
