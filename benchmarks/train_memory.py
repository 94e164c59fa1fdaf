"""Where one DPO stage's memory goes: peak RSS per phase of a real training stage, in this process.

``benchmarks/run_memory.py`` measures a whole shrunk run (minutes of generation first); this runs only
the DPO stage of a pipeline on a pair file (e.g. a finished run's ``round_1/pairs/pairs.jsonl``), with
the pipeline's own ``dpo:`` settings and ``--set`` overrides, and samples this process's RSS every
0.05 s by phase: load + reference log-probs (``precompute_ref_log_probs``), training, saving. After the
stage it reports the RSS left once the trainer is garbage-collected and once glibc's heap is trimmed
(:func:`rlaif.train.memory.release_freed_memory`, what a run does after every training stage).

Usage (>= 10 GB free for full-weight SmolLM2 without checkpointing)::

    PYTHONPATH=$PWD python benchmarks/train_memory.py --pairs RUN/round_1/pairs/pairs.jsonl \\
        --model models/smollm2-135m-instruct --limit 8 --set dpo.gradient_checkpointing=false

Non-guarantees: the peak of a step depends on its longest sequences (the batch is padded to them), so
compare settings on the same pairs; a sample every 0.05 s can miss a shorter spike (``ru_maxrss``,
also printed, does not).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
GB = 1 << 30


class PhaseSampler(threading.Thread):
    """Peak RSS of this process per phase name (``phase`` is switched by the caller)."""

    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.phase = "setup"
        self.peaks: dict[str, int] = {}
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            rss = self.proc.memory_info().rss
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            self.stopped.wait(self.interval)

    def settle(self) -> int:
        """RSS after a pause (a freed page leaves RSS when the kernel processes the unmap)."""
        time.sleep(0.5)
        return self.proc.memory_info().rss


def dpo_config(args):
    """The pipeline's DPO block with this benchmark's model, pairs and output folder."""
    from rlaif.config.loading import load_run_config
    from rlaif.pipeline.compile import resolve
    from rlaif.train.configs import PolicySpec

    cfg = load_run_config(args.pipeline, [f"policy.path={args.model}", *args.set])
    pairs = args.out / "pairs.jsonl"
    lines = args.pairs.read_text(encoding="utf-8").splitlines()
    pairs.write_text("".join(line + "\n" for line in lines[: args.limit or None]), encoding="utf-8")
    return resolve(cfg).runtime(
        "dpo",
        defaults={"output_dir": args.out / "dpo", "seed": cfg.seed + 1},
        forced={"policy": PolicySpec(path=args.model), "pairs": [pairs]},
    )


def measure(args) -> dict:
    from transformers import TrainerCallback

    from rlaif.train.dpo import run_dpo
    from rlaif.train.memory import release_freed_memory

    sampler = PhaseSampler()
    sampler.start()

    class Phases(TrainerCallback):
        def on_train_begin(self, *_, **__):
            sampler.phase = "train"

        def on_train_end(self, *_, **__):
            sampler.phase = "save"

    sampler.phase = "load + reference log-probs"
    cfg = dpo_config(args)
    t0 = time.time()
    result = run_dpo(cfg, callbacks=[Phases()])
    sampler.phase = "after"
    import gc

    gc.collect()
    after_gc = sampler.settle()
    release_freed_memory()
    after_trim = sampler.settle()
    sampler.stopped.set()
    return {
        "settings": args.set,
        "pairs": result.counts.get("pairs"),
        "steps": result.counts.get("steps"),
        "wall_s": round(time.time() - t0, 1),
        "peak_gb": {phase: round(rss / GB, 2) for phase, rss in sampler.peaks.items()},
        "ru_maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20), 2),
        "after_gc_gb": round(after_gc / GB, 2),
        "after_trim_gb": round(after_trim / GB, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", type=Path, default=REPO / "pipelines" / "rlcd_instructions.yaml")
    ap.add_argument("--pairs", type=Path, required=True, help="PreferencePair JSONL (a run's pairs.jsonl)")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "smollm2-135m-instruct")
    ap.add_argument("--out", type=Path, default=Path("/tmp/train_memory"))
    ap.add_argument("--limit", type=int, default=0, help="train on the first N pairs only (0: all)")
    ap.add_argument("--set", action="append", default=[], help="run-config override, e.g. dpo.max_length=128")
    args = ap.parse_args()
    if not (args.model / "config.json").is_file():
        raise SystemExit(f"--model: no config.json in {args.model}")
    if not args.pairs.is_file():
        raise SystemExit(f"--pairs: no such file: {args.pairs}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = measure(args)
    print(json.dumps(result, indent=1))
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
