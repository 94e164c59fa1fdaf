"""The data of a sandbox run, on the parent side: resource limits, test cases and jobs.

Plain frozen dataclasses with one job each: describe what is run, and say exactly what crosses into
the sandbox (``wire()``). Guarantee: :meth:`TestCase.wire` never carries a test's expected value
or the wrapper evaluated around its holes, so neither can be read or forged by the code under test.
How tests are planned from source lives in :mod:`rlaif.sandbox.spec`; how they are judged, in
:mod:`rlaif.sandbox.verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

MISSING: Any = object()  # a call test without an expected value only collects the output

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not", "truthy", "falsy"]


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run. ``total_timeout_s`` defaults to four per-test timeouts.

    ``tmp_mb`` (the work dir's tmpfs size) is fixed when the pool starts; the other limits may be
    changed per call of :meth:`SandboxPool.run`.
    """

    timeout_s: float = 3.0
    total_timeout_s: float | None = None
    memory_mb: int = 1024
    max_processes: int = 64
    file_mb: float = 16.0
    max_open_files: int = 64
    tmp_mb: float = 64.0
    output_bytes: int = 8192
    max_value_bytes: int = 1_000_000

    @property
    def total(self) -> float:
        return self.total_timeout_s if self.total_timeout_s is not None else 4 * self.timeout_s

    def wire(self) -> dict:
        return {
            "timeout": self.timeout_s,
            "total_timeout": self.total,
            "memory_mb": self.memory_mb,
            "max_processes": self.max_processes,
            "file_bytes": int(self.file_mb * 1024 * 1024),
            "max_open_files": self.max_open_files,
            "tmp_mb": self.tmp_mb,
            "output_bytes": self.output_bytes,
            "max_value_bytes": self.max_value_bytes,
            "max_report_bytes": 32 * self.max_value_bytes,
        }


@dataclass(frozen=True)
class TestCase:
    """One test. ``label`` is what diagnostics show (the assert line, or ``fn(input #i)``)."""

    kind: Literal["value", "call", "stmt"]
    label: str
    expr: str | None = None
    op: Op = "=="
    expected: Any = MISSING
    fn: str | None = None
    args: Any = None  # encoded (harness.encode) argument list, for call tests
    atol: float = 0.0
    not_none: bool = False
    oracle: Literal["eq", "any", "eq_or_zero"] = "eq"
    code: str | None = None
    # value tests: the parts run in the sandbox, and the rest, evaluated here (rlaif.sandbox.expr)
    holes: tuple[str, ...] = ()
    iters: tuple[bool, ...] = ()
    wrapper: str | None = None
    # statement tests: run in the worker (rlaif.sandbox.trusted) after the problem's own code
    # (``context``), with ``names`` taken from the candidate and ``modules`` imported there
    context: str = ""
    names: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    # an assert whose candidate calls all have literal arguments: (source, name, args, kwargs) each,
    # made ahead in the sandbox (rlaif.sandbox.spec._constant_calls)
    calls: tuple = ()

    @property
    def has_expected(self) -> bool:
        return self.expected is not MISSING

    def wire(self) -> dict:
        """What the worker gets: never the expected value, nor the wrapper around the holes; a
        statement test's code goes no further than the worker (it sends the test process only
        ``names``)."""
        if self.kind == "value":
            return {"kind": "value", "holes": list(self.holes), "iters": list(self.iters)}
        if self.kind == "call":
            return {"kind": "call", "fn": self.fn, "args": self.args, "not_none": self.not_none}
        return {"kind": "stmt", "code": self.code, "context": self.context, "names": list(self.names),
                "modules": list(self.modules), "calls": [list(c) for c in self.calls]}  # fmt: skip


@dataclass
class Job:
    """One program and its tests. ``setup`` runs after the program, before the tests (MBPP's
    ``test_setup_code``, HumanEval's test module preamble)."""

    program: str
    tests: list[TestCase]
    task_id: str = ""
    id: str = ""
    setup: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def wire(self, limits: Limits) -> dict:
        """The job for the worker; the problem code shared by its tests travels once (``contexts``,
        each test's ``context`` an index into it)."""
        tests, contexts = [t.wire() for t in self.tests], {}
        for t in tests:
            if t.get("context"):
                t["context"] = contexts.setdefault(t["context"], len(contexts))
        return {
            "id": self.id,
            "program": self.program,
            "setup": self.setup,
            "tests": tests,
            "contexts": list(contexts),
            "limits": limits.wire(),
        }
