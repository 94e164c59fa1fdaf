"""The harness binds every name it uses after the program ran *before* it runs: a program that
rebinds the harness's (or the codec's) module globals changes nothing. Each attack is mounted for
real in the sandbox, next to an honest program on the same tests, so a test that fails everything
cannot pass by accident."""

from __future__ import annotations

import pytest

from rlaif.sandbox import Job, assert_test, statement_test
from rlaif.sandbox import codec as codec_module

# a statement test with a star import (it once ran in the sandbox with an injected reporter; it now
# runs in the worker, and the patched names must still change nothing)
UNWRAPPABLE = "from math import *\nfor i in range(3):\n    assert f(i) == i + 1\n"

NAME_PATCHER = """
import sys
for name in ("rlaif.sandbox.harness", "rlaif.sandbox.codec"):
    module = sys.modules.get(name)
    if module is not None:
        # the names the harness injects into test scopes: were they read after the program ran, the
        # test would call the program's own no-op reporter below instead of the real one
        module.ASSERT_NAME = "__not_the_reporter__"
        module.PLAIN_NAME = "__not_the_launderer__"
        module.STMT_NAME = "__not_the_statement_test__"
        module.MAX_DEPTH = 10**9
        module._BIG_INT_BITS = 10**9
        module._candidate_line = lambda tb: 1
def __rlaif_assert__(site, *values):
    pass
def f(x):
    return 0
"""


def test_patching_the_names_injected_into_test_scopes_does_not_pass_a_statement_test(isolated):
    job = Job(program=NAME_PATCHER, tests=[statement_test(UNWRAPPABLE), assert_test("assert f(1) == 2")])
    res = isolated.run_one(job)
    assert res.per_test == ["failed", "failed"], res.diagnostics
    honest = isolated.run_one(Job(program="def f(x):\n    return x + 1\n", tests=job.tests))
    assert honest.per_test == ["passed", "passed"], honest.diagnostics


def test_the_codec_limits_are_bound_at_import(monkeypatch):
    """The encoder reads its limits from the values bound at import, not from module globals a
    program could rebind."""
    monkeypatch.setattr(codec_module, "MAX_DEPTH", 1)
    monkeypatch.setattr(codec_module, "_BIG_INT_BITS", 10**9)
    assert codec_module.encode([[[1]]]) == [[[1]]]
    assert codec_module.encode(1 << 5000) == {"I": format(1 << 5000, "x")}
    with pytest.raises(codec_module.Unencodable):  # the depth bound of import time (100) still holds
        codec_module.encode(_nested(105))


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value
