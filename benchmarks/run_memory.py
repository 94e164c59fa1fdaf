"""Where a small real-model run's memory goes: the peak RSS of the whole process tree, per stage.

Runs a shrunk pipeline (default: the instruction loop on SmolLM2-135M, 40 prompts, one round) once per
``--modes`` entry - ``engine.during_training=keep`` (the old lifetime: the policy engine stays up
while the trainer runs) and ``close`` (the engine is closed before a training stage and started again
after) - and samples the RSS of the ``rlaif run`` process and all its descendants (vLLM's EngineCore
and worker processes, the sandbox) every ``--interval`` seconds. Samples are attributed to stages from
the run's event log (``metrics.jsonl``: stage_start / stage_done).

Usage (on a quiet machine with >= 12 GB free; each mode takes a few minutes on 2 CPU cores)::

    PYTHONPATH=$PWD python benchmarks/run_memory.py \\
        --model /work/main/models/smollm2-135m-instruct --out /tmp/run_memory

``--reuse-from DIR`` skips the stages before the first training stage by copying them from a finished
run of the same settings (they do not depend on the mode); ``--attach PID --run-dir DIR`` samples a
run that is already going.

Non-guarantees: RSS summed over processes counts pages they share (the CUDA/torch libraries mapped in
both the trainer and vLLM) twice, so the tree total is an upper bound on what the run costs the machine;
a sample every 0.25 s can miss a shorter spike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
GB = 1 << 30


def tree_rss(proc: psutil.Process) -> int:
    """RSS of ``proc`` and every descendant still alive (bytes)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class Sampler(threading.Thread):
    """(wall time, tree RSS) every ``interval`` seconds until the process exits."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.time(), tree_rss(self.proc)))
            self.stopped.wait(self.interval)


def stage_windows(events_path: Path, until: float = 0.0) -> list[tuple[str, float, float]]:
    """(stage, start, end) from the run's event log; a stage without an end (the run was killed in it)
    runs to ``until`` (the last sample) or the last event, whichever is later."""
    starts: dict[str, float] = {}
    windows = []
    last = until
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        last = max(last, event["time"])
        if event.get("event") == "stage_start":
            starts[event["stage"]] = event["time"]
        elif event.get("event") in ("stage_done", "stage_failed") and event["stage"] in starts:
            windows.append((event["stage"], starts.pop(event["stage"]), event["time"]))
    windows += [(stage, t, last) for stage, t in starts.items()]
    return sorted(windows, key=lambda w: w[1])


def per_stage_peaks(samples, windows) -> list[tuple[str, float, int]]:
    """(stage, wall seconds, peak tree RSS) per stage; samples outside every stage go to ``(setup)``."""
    rows = []
    for stage, start, end in windows:
        inside = [rss for t, rss in samples if start <= t <= end]
        rows.append((stage, end - start, max(inside, default=0)))
    first = windows[0][1] if windows else float("inf")
    setup = [rss for t, rss in samples if t < first]
    return [("(setup)", 0.0, max(setup, default=0)), *rows]


def run_config_overrides(args, mode: str, out: Path) -> list[str]:
    from rlaif.config.loading import load_run_config

    sets = [
        f"output_dir={out / mode}",
        f"policy.path={args.model}",
        f"prompts.limit={args.prompts_limit}",
        f"rounds={args.rounds}",
        f"engine.during_training={mode}",
    ]
    cfg = load_run_config(args.pipeline, sets)
    if cfg.eval.instructions is not None:
        sets.append(f"eval.instructions.prompts.limit={args.eval_limit}")
    if cfg.eval.win_rate_prompts is not None:
        sets.append(f"eval.win_rate_limit={args.eval_limit}")
    return sets + list(args.set)


def reuse_stages(source: Path, run_dir: Path) -> list[str]:
    """Copy the finished stages of ``source`` (another mode's run) that come before its first training
    stage into ``run_dir``; the run skips them (same config and inputs). Why: engine.during_training
    acts only from the first training stage on, so those stages are the same in every mode, and a
    shrunk run on a loaded 2-core machine spends most of its time there."""
    names = []
    for line in (source / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") not in ("stage_start", "stage_skipped"):  # a skipped stage is finished too
            continue
        if event["stage"].endswith("/train"):
            break
        if event["stage"] not in names:
            shutil.copytree(source / event["stage"], run_dir / event["stage"], dirs_exist_ok=True)
            names.append(event["stage"])
    return names


def measure(args, mode: str, out: Path) -> dict:
    from rlaif.config.loading import load_run_config

    sets = run_config_overrides(args, mode, out)
    run_dir = load_run_config(args.pipeline, sets).run_dir()
    reused = reuse_stages(args.reuse_from, run_dir) if args.reuse_from else []
    command = [sys.executable, "-m", "rlaif.cli", "run", str(args.pipeline), *sets]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = out / f"{mode}.log"
    print(f"[{mode}] {' '.join(command)}  (log: {log}; reused: {reused or 'none'})", flush=True)
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
        samples = sample_until_exit(proc.pid, args.interval, proc.wait)
    result = summarise(mode, samples, run_dir, time.time() - t0, reused)
    if proc.returncode != 0:  # still report what was sampled (e.g. killed by the OOM killer: -9)
        print(f"[{mode}] the run failed with exit code {proc.returncode}; see {log}", flush=True)
        result["mode"] += f" (FAILED, exit {proc.returncode})"
    return result


def sample_until_exit(pid: int, interval: float, wait) -> list[tuple[float, int]]:
    sampler = Sampler(pid, interval)
    sampler.start()
    wait()
    sampler.stopped.set()
    sampler.join()
    return sampler.samples


def summarise(mode: str, samples, run_dir: Path, wall_s: float, reused: list[str]) -> dict:
    """Per-stage peaks of the stages this run executed (a reused stage that was skipped has no window)."""
    last_sample = samples[-1][0] if samples else 0.0
    stages = per_stage_peaks(samples, stage_windows(run_dir / "metrics.jsonl", until=last_sample))
    peak = max(rss for _, rss in samples)
    return {"mode": mode, "wall_s": wall_s, "peak": peak, "stages": stages, "reused": reused}


def attach(args) -> dict:
    """Sample a run started elsewhere (``--attach PID``) until it exits."""
    proc = psutil.Process(args.attach)
    t0 = time.time()

    def wait() -> None:
        while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            time.sleep(args.interval)

    samples = sample_until_exit(args.attach, args.interval, wait)
    return summarise(f"pid {args.attach}", samples, args.run_dir, time.time() - t0, [])


def print_table(results: list[dict]) -> None:
    stages = list(dict.fromkeys(s for r in results for s, _, _ in r["stages"]))
    head = f"{'stage':<24}" + "".join(f"{r['mode'] + ' GB':>12}{'s':>8}" for r in results)
    print(head)
    for stage in stages:
        cells = []
        for r in results:
            row = next((x for x in r["stages"] if x[0] == stage), None)
            cells.append(f"{row[2] / GB:>12.2f}{row[1]:>8.0f}" if row else f"{'-':>12}{'-':>8}")
        print(f"{stage:<24}" + "".join(cells))
    print(
        f"{'PEAK (whole run)':<24}" + "".join(f"{r['peak'] / GB:>12.2f}{r['wall_s']:>8.0f}" for r in results)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", type=Path, default=REPO / "pipelines" / "rlcd_instructions.yaml")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "smollm2-135m-instruct")
    ap.add_argument("--out", type=Path, default=Path("/tmp/run_memory"))
    ap.add_argument("--modes", default="keep,close", help="engine.during_training values, in run order")
    ap.add_argument("--prompts-limit", type=int, default=40)
    ap.add_argument("--eval-limit", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--set", action="append", default=[], help="more run-config overrides, KEY=VALUE")
    ap.add_argument(
        "--reuse-from",
        type=Path,
        help="a finished run directory of the same shrunk run: copy its stages before the first training "
        "stage (the same in every mode) instead of running them; a copied stage that is skipped is "
        "left out of the table (one whose settings differ, e.g. --eval-limit, runs again)",
    )
    ap.add_argument("--attach", type=int, help="sample a run already going (its `rlaif run` PID) instead")
    ap.add_argument("--run-dir", type=Path, help="with --attach: that run's directory (its event log)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.attach:
        results = [attach(args)]
    else:
        if not (args.model / "config.json").is_file():
            raise SystemExit(f"--model: no config.json in {args.model}")
        results = []
        for mode in args.modes.split(","):
            results.append(measure(args, mode, args.out))
            (args.out / f"results_{mode}.json").write_text(json.dumps(results[-1], indent=1))
    print_table(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
