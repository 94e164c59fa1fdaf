"""Turn a problem and a completion into a sandbox job (program + tests).

Where the program comes from: HumanEval completions continue the prompt (program = prompt +
completion); MBPP, MBPP+ and native completions are whole programs. A completion that contains a
fenced code block (chat models) contributes the first such block only.

Where the tests come from: MBPP asserts become value tests where their shape allows (see
:func:`rlaif.sandbox.spec.assert_test`); a HumanEval ``check(candidate)`` made only of asserts is split
into one test per assert (so partial credit is real), anything else runs as one statement test; MBPP+
inputs become calls compared with the reference solution's outputs, which :func:`prepare_expected`
computes once in the sandbox and stores in ``problem.metadata["expected"]``.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Sequence

from rlaif.errors import RlaifError
from rlaif.records import CodeProblem, stable_hash
from rlaif.sandbox.spec import Job, TestCase, assert_test, call_test, statement_test

from .problems import MBPP_PLUS_NOT_NONE, MBPP_PLUS_ORACLES, mbppplus_args

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)

# Where a chat answer's first code block closes and its prose begins ("```" then a blank line): only
# that block is ever run (extract_code), so code generation stops there instead of paying for the
# explanation and usage examples chat models write after it. Why a blank line too: an unlabelled
# *opening* fence ("```" + newline) is followed by code, not by an empty line, so the stop cannot cut
# an answer before its code; a closing fence followed by prose on the next line, or by the end of the
# answer, is simply not stopped at. Candidates that become preference pairs are sampled with the stop
# string kept (``include_stop``) and its blank line dropped (:func:`close_code_block`), so a pair's
# answers end with a closed block; without it they would end inside the block and DPO would teach the
# policy to stop before the closing fence. extract_code also takes an unclosed block to the end of the
# text (evaluation samples stop without the fence). Non-guarantee: an answer that opens with another
# language's block (```bash ... ```) stops before its Python block.
CODE_STOP = ("\n```\n\n",)


def close_code_block(text: str) -> str:
    """A candidate stopped at :data:`CODE_STOP` with the stop kept, without the trailing blank line:
    the answer ends with its closed code block. Any other text is returned as it is."""
    return text[:-1] if text.endswith(CODE_STOP[0]) else text


def extract_code(text: str) -> str:
    """The first fenced code block of a chat answer, or the text itself when it has none."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


def replace_code(answer: str, code: str) -> str:
    """``answer`` with the content of its first code block replaced by ``code``, the block closed; an
    answer without a block becomes ``code`` in one. Why: a fixed program keeps its answer's words."""
    code = code if code.endswith("\n") else code + "\n"
    m = _FENCE.search(answer)
    if m is None:
        return f"```python\n{code}```"
    rest = answer[m.end(1) :]
    return answer[: m.start(1)] + code + (rest if rest.startswith("```") else "```")


def program_for(problem: CodeProblem, completion: str) -> str:
    code = extract_code(completion)
    if problem.source_format == "humaneval":
        code = problem.prompt + code
    return code.replace("\r\n", "\n")


def _humaneval_tests(problem: CodeProblem) -> tuple[list[TestCase], str]:
    """One value test per assert of ``check(candidate)`` when that is all it contains."""
    code = problem.test_code or ""
    entry = problem.entry_point
    user = defined_names(problem)

    def whole() -> list[TestCase]:  # made only where the check cannot be split
        return [statement_test(f"{code}\n\ncheck({entry})\n", label=f"check({entry})", user_names=user,
                               context=problem.prompt, candidates=(entry,))]  # fmt: skip

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return whole(), ""  # which says, in one line, that the test code is not valid Python
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        return whole(), ""
    check = checks[0]
    param = check.args.args[0].arg
    asserts = []
    for stmt in check.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        if isinstance(stmt, ast.Pass):
            continue
        if not isinstance(stmt, ast.Assert):
            return whole(), ""
        if isinstance(stmt.test, ast.Constant) and stmt.test.value is True:
            continue  # "assert True" placeholders
        asserts.append(ast.unparse(ast.Assert(test=stmt.test, msg=None)))
    if not asserts:
        return whole(), ""
    preamble = [ast.unparse(n) for n in tree.body if n is not check]
    setup = "\n".join(preamble + [f"{param} = {entry}"])
    context = "\n".join([problem.prompt, *preamble])  # trusted: the tests see the problem's helpers
    return [
        assert_test(a, user_names=user, context=context, candidates=(param, entry)) for a in asserts
    ], setup


def defined_names(problem: CodeProblem) -> frozenset[str]:
    """Names the problem's own (trusted) reference solution defines at top level, plus its entry
    point: a test calling one of them calls the candidate, even where a builtin has the same name
    (MBPP task 126 defines ``sum``). Never taken from the candidate's program."""
    names = {problem.entry_point} if problem.entry_point else set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # some references have invalid escapes
            source = problem.reference_solution or ""
            if problem.source_format == "humaneval":
                source = problem.prompt + source  # the prompt defines the helpers the tests use
            tree = ast.parse(source)
    except SyntaxError:
        return frozenset(names)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return frozenset(names)


def problem_tests(problem: CodeProblem) -> tuple[list[TestCase], str]:
    """(tests, setup code) for a problem; MBPP+ needs :func:`prepare_expected` first."""
    user = defined_names(problem)
    tests: list[TestCase] = [assert_test(t, user_names=user) for t in problem.tests]
    setup = problem.setup_code
    if problem.source_format == "humaneval" and problem.test_code:
        he_tests, he_setup = _humaneval_tests(problem)
        tests += he_tests
        setup = "\n".join(s for s in (setup, he_setup) if s)
    elif problem.test_code:
        tests.append(statement_test(problem.test_code, user_names=user))
    if problem.inputs:
        expected = problem.metadata.get("expected")
        if expected is None:
            raise RlaifError(
                f"problem {problem.task_id}: expected outputs for its inputs are not computed yet "
                "(run rlaif.code.jobs.prepare_expected first)"
            )
        tests += _call_tests(problem, expected)
    if not tests:
        raise RlaifError(f"problem {problem.task_id} has no tests")
    return tests, setup


def _call_tests(problem: CodeProblem, expected: list | None) -> list[TestCase]:
    from rlaif.sandbox.harness import decode

    entry = problem.entry_point or ""
    oracle = MBPP_PLUS_ORACLES.get(entry, "eq")
    skip = set(problem.metadata.get("reference_failed", []))
    out = []
    for i, inp in enumerate(problem.inputs or []):
        kwargs = {"atol": problem.atol, "label": f"{entry}(input #{i})", "oracle": oracle,
                  "not_none": entry in MBPP_PLUS_NOT_NONE}  # fmt: skip
        if expected is None:
            out.append(call_test(entry, mbppplus_args(problem.task_id, inp), **kwargs))
        elif i not in skip:  # the reference itself failed on this input: counted, not tested
            out.append(call_test(entry, mbppplus_args(problem.task_id, inp), decode(expected[i]), **kwargs))
    return out


def build_job(
    problem: CodeProblem,
    completion: str,
    *,
    sample_index: int | None = None,
    prepared: tuple[list[TestCase], str] | None = None,
) -> Job:
    """``prepared``: the problem's :func:`problem_tests`, made once for many samples (see
    :class:`JobBuilder`)."""
    tests, setup = prepared if prepared is not None else problem_tests(problem)
    program = program_for(problem, completion)
    meta = {} if sample_index is None else {"sample_index": sample_index}
    return Job(
        program=program,
        tests=list(tests),
        setup=setup,
        task_id=problem.task_id,
        id=stable_hash(problem.task_id, str(sample_index), program),
        metadata=meta,
    )


class JobBuilder:
    """:func:`build_job` with each problem's tests made once: making them parses and analyses every
    test (tens of ms per HumanEval problem), and they depend only on the problem. Holds the problems
    it saw; not for problems changed in between (call :func:`prepare_expected` first)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[CodeProblem, tuple[list[TestCase], str]]] = {}

    def prepare(self, problems: Sequence[CodeProblem]) -> JobBuilder:
        """Make the tests of every problem that needs nothing from the sandbox (not MBPP+-style) now."""
        for p in problems:
            if not p.inputs and id(p) not in self._made:
                self._made[id(p)] = (p, problem_tests(p))
        return self

    def __call__(self, problem: CodeProblem, completion: str, *, sample_index: int | None = None) -> Job:
        made = self._made.get(id(problem))
        if made is None or made[0] is not problem:
            made = self._made[id(problem)] = (problem, problem_tests(problem))
        return build_job(problem, completion, sample_index=sample_index, prepared=made[1])


def reference_job(problem: CodeProblem) -> Job:
    if not problem.reference_solution:
        raise RlaifError(f"problem {problem.task_id} has no reference solution")
    return build_job(problem, problem.reference_solution)


def prepare_expected(problems: Sequence[CodeProblem], pool) -> dict[str, list[str]]:
    """Run each MBPP+-style problem's reference solution on its inputs (in the sandbox: reference code
    is data too) and store the encoded outputs in ``metadata["expected"]``.

    Inputs on which the reference itself fails (an exception, or an output beyond the sandbox's value
    limits) are listed in ``metadata["reference_failed"]`` and not tested; the returned dict gives,
    per task with such inputs, one reason per failed input.
    """
    todo = [p for p in problems if p.inputs and p.metadata.get("expected") is None]
    jobs = []
    for p in todo:
        if not p.reference_solution:
            raise RlaifError(f"problem {p.task_id}: MBPP+-style inputs need a reference solution")
        jobs.append(Job(program=program_for(p, p.reference_solution), tests=_call_tests(p, None),
                        task_id=p.task_id, id=stable_hash("reference", p.task_id)))  # fmt: skip
    failures: dict[str, list[str]] = {}
    for p, raw in zip(todo, pool.run_raw(jobs) if jobs else [], strict=True):
        if not (raw.get("load") or {}).get("ok"):
            raise RlaifError(
                f"problem {p.task_id}: the reference solution does not run "
                f"({raw.get('sandbox_error') or raw.get('load')})"
            )
        outcomes = raw.get("tests") or []
        expected, failed, reasons = [], [], []
        for i in range(len(p.inputs or [])):
            o = outcomes[i] if i < len(outcomes) else None
            if o and o.get("e") == "val":
                expected.append(o["v"])
                continue
            expected.append(None)
            failed.append(i)
            reasons.append(
                f"input #{i}: "
                + (f"{o.get('type', o.get('e'))} {o.get('msg', '')}".strip() if o else "not run")
            )
        p.metadata["expected"] = expected
        p.metadata["reference_failed"] = failed
        if failed:
            failures[p.task_id] = reasons
    return failures
