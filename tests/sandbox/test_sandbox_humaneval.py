"""Real HumanEval through the sandbox: every canonical solution passes with its ``check`` run in the
worker (no verdict decided in the candidate's process), and wrong programs that rebind what the test
uses (builtins, the problem's own helpers), forge reports through frames or ``gc``, or patch their
own process, all fail. Each attack is checked next to the honest program on the same problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlaif.code.jobs import build_job
from rlaif.code.problems import load_problems

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="module")
def humaneval():
    return {p.task_id: p for p in load_problems(ASSETS / "HumanEval.jsonl.gz")}


def test_every_canonical_solution_passes_with_no_in_process_verdict(pool, humaneval):
    problems = list(humaneval.values())
    assert len(problems) == 164
    results = pool.run([build_job(p, p.reference_solution) for p in problems])
    failed = [(r.task_id, r.diagnostics) for r in results if not r.passed]
    assert failed == [], failed
    assert all(r.metadata["in_process_verdicts"] == 0 for r in results)
    # the loop-based checks really are statement tests (run in the worker), not split asserts
    assert sum(any(t.kind == "stmt" for t in build_job(p, "").tests) for p in problems) >= 7


def _pair(pool, problem, wrong: str):
    """(the wrong program's result, the canonical solution's result) on the same problem."""
    jobs = [build_job(problem, wrong), build_job(problem, problem.reference_solution)]
    return pool.run(jobs)


# HumanEval/32 (find_zero): check() calls the problem's poly(); HumanEval/38 (decode_cyclic): check()
# calls the problem's encode_cyclic(). A completion that redefines them must not be believed.
POLY_LIAR = """    return 0.0


def poly(xs, x):
    return 0.0
"""
CYCLIC_LIAR = """    return s


def encode_cyclic(s):
    return s
"""
RANGE_EMPTIER = """    return None


range = lambda *a: ()
"""


@pytest.mark.parametrize(
    ("task", "wrong"),
    [("HumanEval/32", POLY_LIAR), ("HumanEval/38", CYCLIC_LIAR), ("HumanEval/32", RANGE_EMPTIER),
     ("HumanEval/38", "    import builtins\n    builtins.range = lambda *a: ()\n    return s\n")],
)  # fmt: skip
def test_rebinding_the_problems_helpers_or_builtins_does_not_pass(isolated, humaneval, task, wrong):
    bad, good = _pair(isolated, humaneval[task], wrong)
    assert good.passed, good.diagnostics
    assert not bad.passed and bad.status in ("failed", "runtime_error"), bad.diagnostics


FRAME_FORGER = """    import sys
    frame = sys._getframe(1)
    while frame is not None:  # the harness's frames: claim success on every channel they hold
        loc = frame.f_locals
        if "send" in loc:
            for event in ("ok", "val", "done"):
                try:
                    loc["send"]({"e": event, "i": loc.get("i", 0), "v": []})
                except Exception:
                    pass
        frame = frame.f_back
    return 0.0
"""
GC_WALKER = """    import gc, sys
    for obj in gc.get_objects():  # every function and dict of this process: find test code to patch
        if isinstance(obj, dict) and "check" in obj and callable(obj.get("check")):
            obj["check"] = lambda candidate: None
        if callable(obj) and getattr(obj, "__name__", "") in ("send", "finish"):
            try:
                obj({"e": "ok", "i": 0})
            except Exception:
                pass
    for name, module in list(sys.modules.items()):
        if name.startswith("rlaif"):
            for attr in dir(module):
                if "run" in attr or "judge" in attr:
                    setattr(module, attr, lambda *a, **k: None)
    return 0.0
"""
PROCESS_PATCHER = """    import builtins, math
    builtins.abs = lambda x: 0
    math.fabs = lambda x: 0.0
    builtins.AssertionError = type("Nothing", (Exception,), {})
    return 0.0
"""


@pytest.mark.parametrize("attack", [FRAME_FORGER, GC_WALKER, PROCESS_PATCHER])
def test_forgery_in_the_candidates_process_does_not_pass_a_check(isolated, humaneval, attack):
    bad, good = _pair(isolated, humaneval["HumanEval/32"], attack)
    assert good.passed, good.diagnostics
    assert not bad.passed, bad.diagnostics
