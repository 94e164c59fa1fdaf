"""PPO throughput: our PPO trainer vs TRL 1.12's experimental PPOTrainer on the same model and settings.

Measures rollout + scoring + update throughput in sampled tokens per second (responses x
max_new_tokens per iteration, the same count for both, since both sample to the limit unless every
response has ended). The first iteration is a warm-up and is not timed. Both sides: full fine-tuning,
a critic initialised from the reward model, a frozen reference copy, a reward model as the scorer,
HF generation (no top-k/top-p), the same batch, minibatch, PPO epochs and response length.

TRL removed PPOTrainer after 1.12, so the baseline runs in a separate virtual environment that has
``trl==1.12.*`` and shares the rest of this project's packages:

    python3 -m venv /tmp/trl112
    /tmp/trl112/bin/pip install --no-deps "trl==1.12.*"
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/trl112/lib/python3.11/site-packages/zz_project.pth
    .venv/bin/python benchmarks/ppo_throughput.py --trl-python /tmp/trl112/bin/python

Without ``--trl-python`` only our side is measured. ``--size 25m`` builds a ~25M-parameter model,
``--size 100m`` a ~136M one with a 32k vocabulary (see ``bench_models.py``). ``--device`` (auto, cpu,
cuda) and ``--precision`` (auto = bf16 autocast on a GPU, fp32 on CPU) apply to both sides alike.
Prints one line per side and the ratio ours / TRL (targets: >= 1.5 at 100m on a GPU, >= 1.0 on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_models import SIZES, add_device_args, build_policy, describe, resolve_device, resolve_precision


def trl_worker(spec_path: str) -> None:
    """Runs under the TRL 1.12 interpreter: imports nothing from rlaif (it may not be installed there)."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
    )
    from trl import __version__ as trl_version
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    spec = json.loads(Path(spec_path).read_text())
    torch.manual_seed(spec["seed"])
    tok = AutoTokenizer.from_pretrained(spec["policy"], padding_side="left")
    ids = [
        tok.encode(
            tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True), add_special_tokens=False
        )
        for p in spec["prompts"]
    ]
    dataset = Dataset.from_dict({"input_ids": ids})
    fp32 = {"dtype": torch.float32}  # weights fp32 as on our side; bf16 only through autocast
    policy = AutoModelForCausalLM.from_pretrained(spec["policy"], **fp32)
    ref = AutoModelForCausalLM.from_pretrained(spec["policy"], **fp32)
    value = AutoModelForSequenceClassification.from_pretrained(spec["reward_model"], num_labels=1, **fp32)
    reward = AutoModelForSequenceClassification.from_pretrained(spec["reward_model"], num_labels=1, **fp32)
    batch, mini = spec["batch_size"], spec["minibatch_size"]
    args = PPOConfig(
        output_dir=spec["output_dir"],
        per_device_train_batch_size=mini,
        gradient_accumulation_steps=batch // mini,
        num_mini_batches=batch // mini,
        num_ppo_epochs=spec["ppo_epochs"],
        total_episodes=batch * spec["steps"],
        response_length=spec["max_new_tokens"],
        local_rollout_forward_batch_size=mini,
        temperature=1.0,
        kl_coef=spec["kl_coef"],
        learning_rate=spec["learning_rate"],
        stop_token="eos",
        missing_eos_penalty=None,
        num_sample_generations=0,
        report_to=[],
        save_strategy="no",
        logging_steps=1000,
        bf16=spec["precision"] == "bf16",
        use_cpu=spec["device"] == "cpu",
        seed=spec["seed"],
        disable_tqdm=True,
    )
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    trainer = PPOTrainer(
        args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
        train_dataset=dataset, value_model=value, callbacks=[Clock()],
    )  # fmt: skip
    trainer.train()
    timed_steps = len(stamps) - 1
    seconds = stamps[-1] - stamps[0]
    print(json.dumps({"trl": trl_version, "steps": timed_steps, "seconds": seconds}))


def build_models(size: str, workdir: Path) -> tuple[Path, Path]:
    from transformers import AutoModelForSequenceClassification

    from rlaif.train.models import load_tokenizer

    policy = build_policy(size, workdir)
    rm_dir = workdir / f"rm_{size}"
    rm = AutoModelForSequenceClassification.from_pretrained(str(policy), num_labels=1)
    rm.config.pad_token_id = load_tokenizer(policy).pad_token_id
    rm.save_pretrained(str(rm_dir))
    load_tokenizer(policy).save_pretrained(str(rm_dir))
    return policy, rm_dir


def run_ours(policy: Path, rm: Path, prompts, args, workdir: Path) -> dict:
    import torch

    from rlaif.train.configs import PPOConfig
    from rlaif.train.ppo import PPOTrainer

    torch.manual_seed(args.seed)
    cfg = PPOConfig(
        output_dir=workdir / "ours",
        policy={"path": policy},
        reward={"reward_model": rm},
        lora=None,
        max_steps=args.steps,
        batch_size=args.batch_size,
        minibatch_size=args.minibatch_size,
        ppo_epochs=args.ppo_epochs,
        max_completion_length=args.max_new_tokens,
        kl_coef=args.kl_coef,
        learning_rate=args.learning_rate,
        missing_eos_penalty=None,
        save_critic=False,
        seed=args.seed,
        precision=args.precision,
    )
    trainer = PPOTrainer(cfg, prompts=prompts)
    if trainer.accelerator.device.type != args.device:
        raise SystemExit(f"ours ran on {trainer.accelerator.device}, not {args.device}")
    trainer.step()  # warm-up, not timed
    start = time.perf_counter()
    lengths = [trainer.step()["response_tokens"] for _ in range(args.steps - 1)]
    seconds = time.perf_counter() - start
    return {"steps": args.steps - 1, "seconds": seconds, "actual_response_tokens": sum(lengths)}


def run_trl(python: str, policy: Path, rm: Path, prompts, args, workdir: Path) -> dict:
    spec = {
        "policy": str(policy), "reward_model": str(rm), "output_dir": str(workdir / "trl"),
        "prompts": [[m.model_dump() for m in p.messages] for p in prompts], "steps": args.steps,
        "batch_size": args.batch_size, "minibatch_size": args.minibatch_size, "ppo_epochs": args.ppo_epochs,
        "max_new_tokens": args.max_new_tokens, "kl_coef": args.kl_coef, "learning_rate": args.learning_rate,
        "seed": args.seed, "device": args.device, "precision": args.precision,
    }  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "trl_spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)  # --device cpu already hid CUDA in os.environ
    proc = subprocess.run(
        [python, __file__, "--trl-worker", str(spec_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"TRL 1.12 worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rate(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--steps", type=int, default=6, help="PPO iterations (the first is a warm-up).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--minibatch-size", type=int, default=8)
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="Alternating runs per side; medians are reported."
    )
    parser.add_argument("--trl-python", help="Interpreter of a venv with trl==1.12.* (the baseline).")
    parser.add_argument("--trl-worker", help=argparse.SUPPRESS)
    add_device_args(parser)
    args = parser.parse_args()
    if args.trl_worker:
        trl_worker(args.trl_worker)
        return
    args.device = resolve_device(args.device)
    args.precision = resolve_precision(args.precision, args.device)

    from rlaif.records import Message, PromptRecord

    prompts = [
        PromptRecord(
            id=f"p{i}", messages=[Message(role="user", content=f"Write a short note about topic {i}.")]
        )
        for i in range(args.batch_size * 4)
    ]
    with tempfile.TemporaryDirectory(prefix="ppo_bench_") as tmp:
        workdir = Path(tmp)
        policy, rm = build_models(args.size, workdir)
        sampled_per_step = args.batch_size * args.max_new_tokens
        ours_runs, trl_runs = [], []
        for rep in range(args.repeats):  # alternate, so load from other processes hits both sides alike
            ours = run_ours(policy, rm, prompts, args, workdir / f"r{rep}")
            ours_runs.append(ours["steps"] * sampled_per_step / ours["seconds"])
            print(f"  run {rep + 1}: ours {_rate(ours_runs[-1])} sampled tok/s "
                  f"({_rate(ours['actual_response_tokens'] / ours['seconds'])} tok/s up to EOS)", end="")  # fmt: skip
            if args.trl_python:
                trl = run_trl(args.trl_python, policy, rm, prompts, args, workdir / f"r{rep}")
                trl_runs.append(trl["steps"] * sampled_per_step / trl["seconds"])
                print(f", TRL {trl['trl']} {_rate(trl_runs[-1])} sampled tok/s", end="")
            print()
        ours_tps = statistics.median(ours_runs)
        setting = (
            f"size={args.size} ({describe(policy)}), device={args.device}, precision={args.precision}, "
            f"batch={args.batch_size}, minibatch={args.minibatch_size}, epochs={args.ppo_epochs}, "
            f"new tokens={args.max_new_tokens}, {args.steps - 1} timed iterations x {args.repeats} runs"
        )
        print(f"ours      : median {_rate(ours_tps)} sampled tok/s ({setting})")
        if not args.trl_python:
            print("TRL 1.12  : not measured (pass --trl-python; see the module docstring)")
            return
        trl_tps = statistics.median(trl_runs)
        print(f"TRL 1.12  : median {_rate(trl_tps)} sampled tok/s")
        target = "1.5 on a GPU at 100m" if args.device == "cuda" else "1.0 on CPU"
        print(f"ratio ours/TRL = {ours_tps / trl_tps:.2f} (target >= {target})")


if __name__ == "__main__":
    main()
