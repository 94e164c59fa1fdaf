"""DPO stage overhead: ``rlaif.train.dpo.run_dpo`` vs a raw TRL ``DPOTrainer`` call on the same data.

Both sides are timed end to end, from reading the pair file to a saved LoRA adapter, with identical TRL
settings (the raw side uses the very ``trl.DPOConfig`` our stage builds, pointed at its own output
directory) and the same LoRA shape. What ours adds: pair validation through ``PreferencePair``, the
metrics.jsonl callback, tokenizer files next to the adapter, result.json. Runs alternate (so load from
other processes hits both alike); medians and best runs are reported. Target: overhead <= 5%.

    .venv/bin/python benchmarks/dpo_overhead.py                 # ~25M-parameter model, 64 pairs
    .venv/bin/python benchmarks/dpo_overhead.py --size tiny     # fixed costs dominate there
    .venv/bin/python benchmarks/dpo_overhead.py --size 100m --device cuda   # 32k vocabulary, bf16 autocast

``--device`` and ``--precision`` apply to both sides (the raw side uses the TRL config ours builds, and
loads the model in fp32 like ours: bf16 comes from autocast on both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench_models import SIZES, add_device_args, build_policy, describe, resolve_device, resolve_precision


def write_pairs(path: Path, n: int) -> None:
    from rlaif.records import Message, PreferencePair, write_jsonl

    words = ["apple", "river", "stone", "cloud", "green", "music", "table", "light"]
    write_jsonl(
        path,
        [
            PreferencePair(
                id=f"p{i}",
                prompt=[
                    Message(role="user", content=f"Tell me about the {words[i % 8]} number {i}, briefly.")
                ],
                chosen=f"The {words[i % 8]} is good and useful; here is a calm, clear answer number {i}.",
                rejected=f"No. I will not talk about {words[(i + 3) % 8]}, go away {i}!",
                source="bench",
            )
            for i in range(n)
        ],
    )


def ours(cfg) -> float:
    from rlaif.train.dpo import run_dpo

    start = time.perf_counter()
    run_dpo(cfg)
    return time.perf_counter() - start


def raw_trl(cfg, out: Path) -> float:
    """What a user would write with TRL alone: read JSONL, build the dataset, train, save."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    from rlaif.train.dpo import trl_dpo_args
    from rlaif.train.models import peft_lora_config

    args = trl_dpo_args(cfg)
    args.output_dir = str(out / "trainer")
    start = time.perf_counter()
    rows = []
    with open(cfg.pairs[0], encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            rows.append(
                {
                    "prompt": rec["prompt"],
                    "chosen": [{"role": "assistant", "content": rec["chosen"]}],
                    "rejected": [{"role": "assistant", "content": rec["rejected"]}],
                }
            )
    tok = AutoTokenizer.from_pretrained(str(cfg.policy.path))
    model = AutoModelForCausalLM.from_pretrained(str(cfg.policy.path), dtype="float32")
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=peft_lora_config(cfg.lora),
    )
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="25m")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    add_device_args(parser)
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    args.precision = resolve_precision(args.precision, args.device)

    from rlaif.train.configs import DPOConfig

    with tempfile.TemporaryDirectory(prefix="dpo_bench_") as tmp:
        tmp = Path(tmp)
        policy = build_policy(args.size, tmp / "model")
        pairs = tmp / "pairs.jsonl"
        write_pairs(pairs, args.pairs)

        def cfg(name: str) -> DPOConfig:
            return DPOConfig(
                output_dir=tmp / name,
                policy={"path": policy},
                pairs=[pairs],
                per_device_train_batch_size=args.batch_size,
                learning_rate=1e-4,
                logging_steps=1,
                precision=args.precision,
            )

        ours(cfg("warmup_ours"))  # imports, dataset caches and allocator warm-up, not timed
        raw_trl(cfg("warmup_raw"), tmp / "warmup_raw_out")
        ours_t, raw_t = [], []
        for rep in range(args.repeats):
            ours_t.append(ours(cfg(f"ours{rep}")))
            raw_t.append(raw_trl(cfg(f"raw{rep}"), tmp / f"raw{rep}_out"))
            print(f"  run {rep + 1}: ours {ours_t[-1]:.2f} s, raw TRL {raw_t[-1]:.2f} s")
        o, r = statistics.median(ours_t), statistics.median(raw_t)
        steps = -(-args.pairs // args.batch_size)
        print(
            f"ours    : median {o:.2f} s, best {min(ours_t):.2f} s ({args.pairs} pairs, {steps} steps, "
            f"size={args.size} ({describe(policy)}), device={args.device}, precision={args.precision})"
        )
        print(f"raw TRL : median {r:.2f} s, best {min(raw_t):.2f} s")
        print(f"overhead = {100 * (o / r - 1):+.1f}% on medians, {100 * (min(ours_t) / min(raw_t) - 1):+.1f}% on best runs "
              "(target <= +5%)")  # fmt: skip


if __name__ == "__main__":
    main()
