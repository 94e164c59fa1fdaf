"""vLLM on a small CPU machine: rlaif's engine (no core reserved on <= 4 CPUs) vs vLLM's default (one
core kept for the scheduler process), in one run.

Each setting runs in its own process (vLLM reads ``VLLM_CPU_NUM_OF_RESERVED_CPU`` when its processes
start), the two alternate, and each reports the median over ``--repeats``: sampling ``--n`` replies
for ``--prompts`` prompts, then scoring every reply (prompt log-probabilities). With SmolLM2 if it
was converted (``make real-model``), else a tiny random model.

    .venv/bin/python benchmarks/engine_cpu_cores.py [--prompts 150 --n 4 --tokens 80 --repeats 2]

Target: ratio (rlaif / vLLM default) above 1 on machines with <= 4 CPUs; on larger machines rlaif
keeps vLLM's default, so the two settings are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from child_process import run_child

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = REPO / "models" / "smollm2-135m-instruct"


def child(model: str, prompts: int, n: int, tokens: int) -> None:
    """One measurement in this process; prints one JSON line."""
    from rlaif.engines.base import Sampling
    from rlaif.engines.vllm import VLLMEngine

    questions = [f"Question {i}: give three tips for a calm morning, number {i}." for i in range(prompts)]
    with VLLMEngine(model, max_model_len=1024, kv_cache_memory_bytes=1 << 29, progress=False) as engine:
        start = time.perf_counter()
        outs = engine.generate(questions, Sampling(n=n, temperature=0.8, max_tokens=tokens, seed=1))
        gen_s = time.perf_counter() - start
        texts = [c.text for out in outs for c in out]
        owners = [q for q, out in zip(questions, outs, strict=True) for _ in out]
        start = time.perf_counter()
        engine.score_continuations(owners, texts)
        score_s = time.perf_counter() - start
    tokens_out = sum(len(c.token_ids or []) for out in outs for c in out)
    reserved = os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU")
    print(json.dumps({"gen_tok_s": tokens_out / gen_s, "score_s": score_s, "reserved": reserved}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=150)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default=None, help="model directory (default: SmolLM2, else a tiny model)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.model, args.prompts, args.n, args.tokens)
        return

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None and (SMOLLM2 / "config.json").is_file():
            model = str(SMOLLM2)
        elif model is None:
            from rlaif.tiny_model import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny", seed=0))
        settings = {
            "rlaif": {k: v for k, v in os.environ.items() if k != "VLLM_CPU_NUM_OF_RESERVED_CPU"},
            # vLLM's own default: one core per rank kept for the scheduler
            "vllm_default": {**os.environ, "VLLM_CPU_NUM_OF_RESERVED_CPU": "1"},
        }
        results: dict[str, list[dict]] = {k: [] for k in settings}
        for _ in range(args.repeats):
            for name, env in settings.items():
                cmd = [sys.executable, __file__, "--child", "--model", model, "--prompts", str(args.prompts),
                       "--n", str(args.n), "--tokens", str(args.tokens)]  # fmt: skip
                results[name].append(run_child(cmd, name, env=env))
    med = {
        name: {
            "gen_tokens_per_s": round(statistics.median(r["gen_tok_s"] for r in runs), 1),
            "score_s": round(statistics.median(r["score_s"] for r in runs), 2),
            "reserved_cpus": runs[0]["reserved"],
        }
        for name, runs in results.items()
    }
    summary = {
        "model": Path(model).name,
        "cpus": os.cpu_count(),
        **med,
        "generation_ratio": round(
            med["rlaif"]["gen_tokens_per_s"] / med["vllm_default"]["gen_tokens_per_s"], 2
        ),
        "scoring_ratio": round(med["vllm_default"]["score_s"] / med["rlaif"]["score_s"], 2),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
