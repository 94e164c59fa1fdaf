"""Load coding problems (HumanEval, MBPP, sanitized MBPP, MBPP+, or our own format) as CodeProblems.

Formats are recognised per record from their fields:

- HumanEval: ``task_id``, ``prompt``, ``test`` (defines ``check(candidate)``), ``entry_point``,
  optional ``canonical_solution``. The program is prompt + completion.
- MBPP: ``task_id``, ``text``, ``code`` (reference, CRLF line endings), ``test_list`` (asserts),
  ``test_setup_code``; sanitized MBPP has ``prompt`` and ``test_imports`` instead. The completion is
  the whole program.
- MBPP+ (EvalPlus): ``task_id``, ``prompt``, ``entry_point``, ``canonical_solution``, ``base_input``,
  ``plus_input``, ``atol``. Tests are calls of the entry point on each input, compared with the
  reference solution's output (computed in the sandbox, see :func:`rlaif.code.jobs.prepare_expected`).
- native: a :class:`~rlaif.records.CodeProblem` as JSON.

Guarantees: every error names the file, the line (record number for a JSON array) and the field;
duplicate task ids are errors; every assert is parsed at load time, so a broken test is reported
here and not as a failing candidate later. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from rlaif.errors import RecordError, RlaifError, describe_validation_error
from rlaif.records import CodeProblem, Message, as_conversation, iter_json_lines

Format = Literal["auto", "humaneval", "mbpp", "mbppplus", "native"]

# EvalPlus MBPP+ stores inputs as JSON, which has no tuples, sets or complex numbers; these tasks need
# their argument types restored before calling (facts from evalplus/data/mbpp.py).
_TUPLE_ARGS = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630,
               726, 740, 744, 809}  # fmt: skip
_LIST_OF_TUPLES_ARGS = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_FIRST_ARG_LIST_OF_TUPLES = {75, 413, 444, 753}
_SECOND_ARG_TUPLE = {106, 750}
_FIRST_ARG_TUPLE = {250, 405, 446, 617, 720, 763, 808}
_NESTED_TUPLES = {259, 401, 445}
_ALL_TUPLES = {580, 615, 791}
MBPP_PLUS_NOT_NONE = {"check_str", "text_match_three", "text_starta_endb"}
MBPP_PLUS_ORACLES = {"are_equivalent": "any", "sum_div": "eq_or_zero"}


def _all_tuples(x: Any) -> Any:
    return tuple(_all_tuples(i) for i in x) if isinstance(x, list) else x


def mbppplus_args(task_id: str, inp: list) -> list:
    """One MBPP+ input (a JSON list of arguments) with EvalPlus's argument types restored."""
    try:
        num = int(str(task_id).split("/")[-1])
    except ValueError:
        return inp
    if num in _TUPLE_ARGS:
        return [tuple(a) for a in inp]
    if num in _LIST_OF_TUPLES_ARGS:
        return [[tuple(x) for x in a] for a in inp]
    if num in _FIRST_ARG_LIST_OF_TUPLES:
        return [[tuple(x) for x in inp[0]], *inp[1:]]
    if num in _SECOND_ARG_TUPLE:
        return [inp[0], tuple(inp[1]), *inp[2:]]
    if num == 115:
        return [[set(x) if isinstance(x, list) and x else {} for x in inp[0]]]
    if num == 124:
        return [float(inp[0]), complex(inp[1])]
    if num in _FIRST_ARG_TUPLE:
        return [tuple(inp[0]), *inp[1:]]
    if num in _NESTED_TUPLES:
        return [tuple(tuple(x) for x in a) for a in inp]
    if num == 278:
        return [tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])]
    if num == 307:
        return [tuple(inp[0]), *inp[1:]]
    if num == 722:
        return [{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]]
    if num == 252:
        return [complex(inp[0])]
    if num in _ALL_TUPLES:
        return list(_all_tuples(inp))
    return inp


def _records(path: Path) -> Iterator[tuple[str, dict]]:
    """(location, object) pairs; location is ``file:line`` or ``file:record N`` for a JSON array."""
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordError(f"{path}: file not found") from None
        except json.JSONDecodeError as exc:
            raise RecordError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise RecordError(f"{path}: expected a JSON array of problems or a .jsonl file")
        for i, obj in enumerate(data, start=1):
            if not isinstance(obj, dict):
                raise RecordError(f"{path}:record {i}: expected a JSON object, got {type(obj).__name__}")
            yield f"{path}:record {i}", obj
        return
    for lineno, obj in iter_json_lines(path):
        yield f"{path}:{lineno}", obj


def detect_format(obj: dict) -> str:
    if "base_input" in obj or "plus_input" in obj:
        return "mbppplus"
    if "test_list" in obj:
        return "mbpp"
    if "test" in obj or "canonical_solution" in obj:  # HumanEval's own fields (native has test_code)
        return "humaneval"
    return "native"


class _Fields:
    """Typed field access that names the record and the field in every error."""

    def __init__(self, where: str, obj: dict, kind: str):
        self.where, self.obj, self.kind = where, obj, kind

    def _fail(self, field: str, what: str) -> RecordError:
        return RecordError(f"{self.where}: {self.kind} field '{field}' {what}")

    def str(self, field: str, *, required: bool = True, default: str = "") -> str:
        if field not in self.obj or self.obj[field] is None:
            if required:
                raise self._fail(field, "is missing")
            return default
        value = self.obj[field]
        if isinstance(value, int) and field == "task_id":
            return str(value)
        if not isinstance(value, str):
            raise self._fail(field, f"must be a string, got {type(value).__name__}")
        return value

    def str_list(self, field: str, *, required: bool = True) -> list[str]:
        if field not in self.obj or self.obj[field] is None:
            if required:
                raise self._fail(field, "is missing")
            return []
        value = self.obj[field]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self._fail(field, "must be a list of strings")
        return value

    def inputs(self, field: str) -> list:
        value = self.obj.get(field, [])
        if value is None or value == {}:  # EvalPlus writes {} for "no inputs" (e.g. Mbpp/793)
            return []
        if not isinstance(value, list) or not all(isinstance(x, list) for x in value):
            raise self._fail(field, "must be a list of argument lists")
        return value

    def number(self, field: str, default: float) -> float:
        value = self.obj.get(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(field, f"must be a number, got {type(value).__name__}")
        return float(value)


def _check_tests(where: str, kind: str, field: str, tests: list[str]) -> None:
    from rlaif.sandbox.spec import assert_test

    for i, t in enumerate(tests):
        try:
            assert_test(t)
        except RlaifError as exc:
            raise RecordError(f"{where}: {kind} field '{field}[{i}]': {exc}") from None


def _humaneval(where: str, obj: dict) -> CodeProblem:
    f = _Fields(where, obj, "HumanEval")
    test = f.str("test")
    entry = f.str("entry_point")
    try:
        compile(test, f"{where}:test", "exec")
    except SyntaxError as exc:
        raise RecordError(f"{where}: HumanEval field 'test' is not valid Python ({exc.msg})") from None
    return CodeProblem(
        task_id=f.str("task_id"),
        prompt=f.str("prompt"),
        entry_point=entry,
        test_code=test,
        reference_solution=f.str("canonical_solution", required=False) or None,
        source_format="humaneval",
    )


def _mbpp(where: str, obj: dict) -> CodeProblem:
    f = _Fields(where, obj, "MBPP")
    sanitized = "text" not in obj and "prompt" in obj
    tests = f.str_list("test_list")
    if not tests:
        raise RecordError(f"{where}: MBPP field 'test_list' is empty (a problem needs at least one test)")
    _check_tests(where, "MBPP", "test_list", tests)
    setup = (
        "\n".join(f.str_list("test_imports", required=False))
        if sanitized
        else f.str("test_setup_code", required=False)
    )
    code = f.str("code", required=False)
    challenge = f.str_list("challenge_test_list", required=False)
    return CodeProblem(
        task_id=f.str("task_id"),
        prompt=f.str("prompt" if sanitized else "text"),
        tests=tests,
        setup_code=setup.replace("\r\n", "\n"),
        reference_solution=code.replace("\r\n", "\n") or None,
        source_format="mbpp",
        metadata={"challenge_test_list": challenge} if challenge else {},
    )


def _mbppplus(where: str, obj: dict, plus_inputs: bool) -> CodeProblem:
    f = _Fields(where, obj, "MBPP+")
    base = f.inputs("base_input")
    plus = f.inputs("plus_input") if plus_inputs else []
    if not base and not plus:
        raise RecordError(f"{where}: MBPP+ fields 'base_input' and 'plus_input' are both empty")
    return CodeProblem(
        task_id=f.str("task_id"),
        prompt=f.str("prompt"),
        entry_point=f.str("entry_point"),
        reference_solution=f.str("canonical_solution"),
        inputs=base + plus,
        atol=f.number("atol", 0.0),
        source_format="mbppplus",
        metadata={"n_base_inputs": len(base), "assertion": f.str("assertion", required=False)},
    )


def _native(where: str, obj: dict) -> CodeProblem:
    try:
        problem = CodeProblem.model_validate(obj)
    except ValidationError as exc:
        problem = describe_validation_error(exc, limit=1, root="(record)")
        raise RecordError(f"{where}: CodeProblem {problem}") from None
    if not (problem.tests or problem.test_code or problem.inputs):
        raise RecordError(
            f"{where}: CodeProblem has no tests (fields 'tests', 'test_code' and 'inputs' are empty)"
        )
    _check_tests(where, "CodeProblem", "tests", problem.tests)
    return problem


def load_problems(
    path: str | Path, *, format: Format = "auto", plus_inputs: bool = True
) -> list[CodeProblem]:
    """Every problem in the file, in file order; ``plus_inputs=False`` keeps only MBPP+ base inputs."""
    path = Path(path)
    out: list[CodeProblem] = []
    seen: dict[str, str] = {}
    for where, obj in _records(path):
        kind = detect_format(obj) if format == "auto" else format
        if kind == "humaneval":
            problem = _humaneval(where, obj)
        elif kind == "mbpp":
            problem = _mbpp(where, obj)
        elif kind == "mbppplus":
            problem = _mbppplus(where, obj, plus_inputs)
        else:
            problem = _native(where, obj)
        if problem.task_id in seen:
            raise RecordError(
                f"{where}: duplicate task_id {problem.task_id!r} (first at {seen[problem.task_id]})"
            )
        seen[problem.task_id] = where
        out.append(problem)
    if not out:
        raise RecordError(f"{path}: no problems in the file")
    return out


def code_prompt(problem: CodeProblem) -> list[Message]:
    """The chat prompt a policy sees for a code problem (RLCF feedback, evaluation, the final round).

    An MBPP problem's text never names the function its tests call, so it is shown with its first
    test the way EvalPlus writes MBPP+ prompts (a docstring holding the text and one assert): without
    it a correct program fails on its name alone, and MBPP training prompts look like MBPP+ ones."""
    if problem.source_format == "mbpp" and problem.tests:
        return as_conversation(f'"""\n{problem.prompt}\n{problem.tests[0]}\n"""\n')
    return as_conversation(problem.prompt)
