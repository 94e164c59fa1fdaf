"""The RLCF repair feedback of a shipped pipeline under engine settings (KV-cache size, top-p sampler),
in one run: the real ``rlcf`` source (sampling, the sandbox, the repairs) on the first ``--problems``
training problems of the pipeline file, once per setting, each in its own process. It prints the
seconds of each part, vLLM's preemption count, the pairs made, and each setting's feedback time
against the first setting's.

A setting is ``KV_GIB:SAMPLER``. ``SAMPLER`` is ``sort`` (vLLM's CPU sampler, which sorts every
sequence's whole vocabulary at each step to apply ``top_p``; ``RLAIF_VLLM_TOP_P=sort``) or ``topk``
(rlaif's, ``rlaif.engines.cpu_top_p``: the same nucleus from the most likely tokens). Why the KV
cache: when one ``generate`` call's sequences need more than it holds, vLLM preempts running
requests and later recomputes them; the repair requests are long (the problem, the failing answer
and the sandbox's report, then up to 320 tokens) and there are several hundred per chunk.

    .venv/bin/python benchmarks/rlcf_feedback_engine.py [--pipeline pipelines/code_rlcf_qwen_repair.yaml
        --problems 100 --settings 0.5:sort 0.5:topk]

Needs the model the pipeline names (``rlaif models qwen-coder models/qwen2.5-coder-0.5b-instruct``).
Each setting takes many minutes; take the figures on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from child_process import run_child

REPO = Path(__file__).resolve().parents[1]
ENV = "RLAIF_VLLM_TOP_P"  # rlaif.engines.cpu_top_p.ENV, without importing rlaif here


def child(pipeline: str, problems: int, kv_gb: float) -> None:
    """One measurement in this process; prints one JSON line."""
    from rlaif.config.loading import load_run_config
    from rlaif.engines.vllm import VLLMEngine
    from rlaif.feedback.rlcf import RLCFConfig, rlcf
    from rlaif.pipeline.inputs import load_prompt_source
    from rlaif.sandbox import SandboxPool

    cfg = load_run_config(pipeline, [f"prompts.limit={problems}"])
    if cfg.feedback.source != "rlcf":
        raise SystemExit(f"{pipeline}: feedback.source is {cfg.feedback.source!r}, not rlcf")
    options = RLCFConfig.model_validate(cfg.feedback.options)
    chosen = load_prompt_source(cfg.prompts, "prompts")
    engine = VLLMEngine(
        cfg.policy.path,
        seed=cfg.seed,
        max_model_len=cfg.engine.max_model_len,
        kv_cache_memory_bytes=int(kv_gb * (1 << 30)),
        progress=False,
        # vLLM counts preemptions only with its statistics on
        extra_engine_args={"disable_log_stats": False},
    )
    with engine, SandboxPool() as pool:
        start = time.perf_counter()
        result = rlcf(chosen, engine, options, sandbox=pool)
        seconds = time.perf_counter() - start
        preemptions = sum(
            getattr(m, "value", 0) for m in engine.llm.get_metrics() if m.name == "vllm:num_preemptions"
        )
    stats = result.code_stats
    row = {"kv_gb": kv_gb, "sampler": os.environ[ENV], "seconds": round(seconds, 1), "parts": stats.seconds}
    row["preemptions"] = preemptions
    row["pairs"] = len(result.pairs)
    row["repair"] = {k: stats.repair.get(k) for k in ("repairs", "passed", "pairs")} if stats.repair else {}
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "code_rlcf_qwen_repair.yaml"))
    ap.add_argument("--problems", type=int, default=100, help="training problems (one feedback chunk)")
    ap.add_argument("--settings", nargs="+", default=["0.5:sort", "0.5:topk"], help="KV_GIB:SAMPLER")
    ap.add_argument("--kv-gb", type=float, default=0.5, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.pipeline, args.problems, args.kv_gb)
        return
    rows = []
    for setting in args.settings:
        kv, _, sampler = setting.partition(":")
        if sampler not in ("sort", "topk"):
            raise SystemExit(f"--settings {setting}: expected KV_GIB:sort or KV_GIB:topk")
        cmd = [sys.executable, __file__, "--child", "--pipeline", args.pipeline]
        cmd += ["--problems", str(args.problems), "--kv-gb", kv]
        rows.append(run_child(cmd, setting, env={**os.environ, ENV: sampler}, cwd=REPO))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["seconds"]
    for setting, row in zip(args.settings, rows, strict=True):
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in row["parts"].items())
        print(
            f"{setting}: feedback {row['seconds']:.0f} s ({parts}); {row['preemptions']:.0f} preemptions; "
            f"{row['pairs']} pairs, repairs {row['repair']}; time vs {args.settings[0]}: "
            f"{row['seconds'] / base:.2f}"
        )


if __name__ == "__main__":
    main()
