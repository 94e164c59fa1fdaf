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

Non-guarantees: RSS summed over processes counts pages they share (the CUDA/torch libraries mapped in
both the trainer and vLLM) twice, so the tree total is an upper bound on what the run costs the machine;
a sample every 0.25 s can miss a shorter spike.
"""

from __future__ import annotations

import argparse
import json
import os
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


def stage_windows(events_path: Path) -> list[tuple[str, float, float]]:
    """(stage, start, end) from the run's event log; a stage without an end runs to the last event."""
    starts: dict[str, float] = {}
    windows = []
    last = 0.0
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
    from rlaif.config import load_run_config

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


def measure(args, mode: str, out: Path) -> dict:
    from rlaif.config import load_run_config

    sets = run_config_overrides(args, mode, out)
    run_dir = load_run_config(args.pipeline, sets).run_dir()
    command = [sys.executable, "-m", "rlaif.cli", "run", str(args.pipeline), *sets]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = out / f"{mode}.log"
    print(f"[{mode}] {' '.join(command)}  (log: {log})", flush=True)
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid, args.interval)
        sampler.start()
        rc = proc.wait()
        sampler.stopped.set()
        sampler.join()
    if rc != 0:
        raise SystemExit(f"[{mode}] the run failed with exit code {rc}; see {log}")
    windows = stage_windows(run_dir / "metrics.jsonl")
    return {
        "mode": mode,
        "wall_s": time.time() - t0,
        "peak": max(rss for _, rss in sampler.samples),
        "stages": per_stage_peaks(sampler.samples, windows),
    }


def print_table(results: list[dict]) -> None:
    stages = [s for s, _, _ in results[0]["stages"]]
    head = f"{'stage':<24}" + "".join(f"{r['mode'] + ' GB':>12}{'s':>8}" for r in results)
    print(head)
    for i, stage in enumerate(stages):
        cells = []
        for r in results:
            row = r["stages"][i] if i < len(r["stages"]) and r["stages"][i][0] == stage else None
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
    args = ap.parse_args()
    if not (args.model / "config.json").is_file():
        raise SystemExit(f"--model: no config.json in {args.model}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = [measure(args, mode, args.out) for mode in args.modes.split(",")]
    print_table(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
