"""Training speed on the CPU by precision and activation checkpointing: our DPO stage on real pairs.

Why: on a CPU ``precision: auto`` trains in fp32, and the shipped real-model pipelines turn on
gradient checkpointing to save memory. A CPU with AVX-512 BF16 (or AMX) runs bf16 matrix products
faster than fp32, and checkpointing recomputes every layer's forward pass once more; on 2 cores the
DPO rounds are half of Self-Rewarding's wall time. This measures what each setting costs on the same
pairs, same model, same steps, and whether the losses agree (bf16 autocast rounds the activations;
the weights and the optimiser stay fp32 in every mode, see ``rlaif.train.precision``).

Each mode runs our ``run_dpo`` (full weights unless ``--lora-r``; reference log-probs precomputed, as
the shipped pipelines do) in a fresh process, one after the other, so a mode's model load, reference
pass, training and save are all timed, and its peak RSS is its own. The first mode is the baseline:

    PYTHONPATH=. .venv/bin/python benchmarks/train_precision.py --model models/smollm2-135m-instruct \\
        --pairs runs/self_rewarding_smollm2/round_1/pairs/pairs.jsonl --limit 48 \\
        --modes fp32+gc,bf16,fp32

Measured (AMD EPYC, 2 cores, load 0.4-2.1, SmolLM2-135M, 48 Self-Rewarding pairs): fp32 with
checkpointing 121.5 s of training, bf16 81.3 s (1.49x), fp32 without checkpointing 118.8 s (1.02x).

Modes: ``fp32`` or ``bf16``, with ``+gc`` for gradient checkpointing. The defaults follow
``pipelines/self_rewarding_smollm2.yaml`` (learning rate 2e-5, beta 0.1, NLL 0.2, batch 8, 256 tokens).

Non-guarantees: the figures are for this machine's CPU and load (run it with nothing else running and
quote the load average); each mode runs once, so differences under ~10% are within noise on a shared
2-core machine; equal losses say the same steps were taken, not that a whole loop learns as much.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_mode(mode: str) -> tuple[str, bool]:
    """``bf16+gc`` -> ("bf16", True); refuses anything else with one line."""
    precision, _, extra = mode.partition("+")
    if precision not in ("fp32", "bf16") or extra not in ("", "gc"):
        raise SystemExit(f"--modes: expected fp32 or bf16, optionally with +gc, got {mode!r}")
    return precision, extra == "gc"


def one_mode(args: argparse.Namespace) -> None:
    """Child process: train one mode and print its figures as one JSON line."""
    from rlaif.records import load_pairs
    from rlaif.train.configs import DPOConfig
    from rlaif.train.dpo import run_dpo

    precision, checkpointing = parse_mode(args.one)
    pairs = load_pairs([args.pairs])[: args.limit]
    lora = {"r": args.lora_r, "alpha": 2 * args.lora_r} if args.lora_r else None
    cfg = DPOConfig(
        output_dir=args.out,
        policy={"path": args.model},
        pairs=[args.pairs],
        lora=lora,
        learning_rate=args.learning_rate,
        beta=0.1,
        nll_weight=0.2,
        num_train_epochs=1,
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        precompute_ref_log_probs=True,
        gradient_checkpointing=checkpointing,
        precision=precision,
        logging_steps=1,
        report_to=[],
    )
    start = time.perf_counter()
    result = run_dpo(cfg, pairs=pairs)
    wall = time.perf_counter() - start
    steps = [json.loads(line) for line in open(Path(args.out) / "metrics.jsonl", encoding="utf-8")]
    losses = [s["loss"] for s in steps if "loss" in s and "train_runtime" not in s]
    runtime = next((s["train_runtime"] for s in steps if "train_runtime" in s), None)
    margins = [s["rewards/margins"] for s in steps if "rewards/margins" in s]
    print(
        "RESULT "
        + json.dumps(
            {
                "wall_s": wall,
                "train_runtime_s": runtime,
                "losses": losses,
                "margins": margins,
                "pairs": len(pairs),
                "saved": str(result.output_dir),
                "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            }
        ),  # fmt: skip
        flush=True,
    )


def run_child(mode: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--one", mode, "--out", str(out), "--model", str(args.model),
           "--pairs", str(args.pairs), "--limit", str(args.limit), "--batch-size", str(args.batch_size),
           "--learning-rate", str(args.learning_rate), "--lora-r", str(args.lora_r)]  # fmt: skip
    env = dict(os.environ, RLAIF_QUIET="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"mode {mode} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="policy model directory")
    parser.add_argument("--pairs", type=Path, required=True, help="a PreferencePair JSONL file")
    parser.add_argument("--limit", type=int, default=96, help="train on the first N pairs")
    parser.add_argument(
        "--modes", default="fp32+gc,bf16+gc,fp32,bf16", help="comma-separated; the first is the baseline"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--lora-r", type=int, default=0, help="LoRA rank; 0 = full weights (the default)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_mode(args)
        return
    for path, what in ((args.model, "--model"), (args.pairs, "--pairs")):
        if not path.exists():
            raise SystemExit(f"{what}: {path} does not exist")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        parse_mode(m)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="train_precision_") as tmp:
        for mode in modes:
            r = run_child(mode, args, Path(tmp) / mode.replace("+", "_"))
            results[mode] = r
            print(
                f"{mode:8s}: {r['wall_s']:7.1f} s in all, train_runtime {r['train_runtime_s']:.1f} s, "
                f"{len(r['losses'])} steps, loss {r['losses'][0]:.4f} -> {r['losses'][-1]:.4f}, "
                f"reward margin by step {' '.join(f'{m:.3f}' for m in r['margins'])}, max RSS {r['max_rss_gb']:.2f} GB  (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    base_mode = modes[0]
    base = results[base_mode]
    print(f"\nratios against {base_mode} ({base['pairs']} pairs; > 1 means faster than the baseline):")
    for mode in modes[1:]:
        r = results[mode]
        diffs = [abs(a - b) for a, b in zip(base["losses"], r["losses"], strict=False)]
        print(
            f"  {mode:8s}: {base['wall_s'] / r['wall_s']:.2f}x in all, "
            f"{base['train_runtime_s'] / r['train_runtime_s']:.2f}x training; "
            f"per-step loss vs baseline: max |diff| {max(diffs):.2e}, mean {sum(diffs) / len(diffs):.2e}"
        )


if __name__ == "__main__":
    main()
