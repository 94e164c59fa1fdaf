"""Nucleus sampling (``top_p`` < 1) on vLLM's CPU sampler against rlaif's (``rlaif.engines.cpu_top_p``),
in one run: the same sampled programs under each setting, each in its own process, and the tokens per
second of each against the first.

Why: vLLM's CPU sampler applies ``top_p`` by sorting every sequence's whole vocabulary at every
decoding step (Qwen2.5: 151,936 logits a sequence), where ``top_p = 1`` skips the sort; rlaif's
plugin finds the same nucleus among the 256 most likely tokens. The workload is the RLCF pipeline's
sampling: ``--n`` programs for each of the first ``--problems`` training problems of the pipeline
file (temperature 0.8, up to ``--tokens`` tokens, the pipeline's KV cache and stop strings), seeded.
A setting is ``TOP_P:SAMPLER``: ``sort`` is vLLM's own sampler (``RLAIF_VLLM_TOP_P=sort``), ``topk``
rlaif's; with the same seeds the two should sample the same programs, which is reported too.

    .venv/bin/python benchmarks/engine_top_p_cpu.py [--pipeline pipelines/code_rlcf_qwen_repair.yaml
        --problems 100 --n 2 --tokens 256 --settings 0.95:sort 0.95:topk 1.0:sort]

Needs the model the pipeline names (``rlaif models qwen-coder models/qwen2.5-coder-0.5b-instruct``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from child_process import run_child

REPO = Path(__file__).resolve().parents[1]
ENV = "RLAIF_VLLM_TOP_P"  # rlaif.engines.cpu_top_p.ENV, without importing rlaif here


def child(pipeline: str, problems: int, n: int, tokens: int, top_p: float, texts_path: str) -> None:
    """One measurement in this process; prints one JSON line."""
    from rlaif.code.jobs import CODE_STOP
    from rlaif.code.problems import code_prompt
    from rlaif.config.loading import load_run_config
    from rlaif.engines.base import Sampling
    from rlaif.engines.vllm import VLLMEngine
    from rlaif.pipeline.inputs import load_prompt_source

    cfg = load_run_config(pipeline, [f"prompts.limit={problems}"])
    prompts = [code_prompt(p) for p in load_prompt_source(cfg.prompts, "prompts")]
    kv = int(cfg.engine.kv_cache_gb * (1 << 30)) if cfg.engine.kv_cache_gb else None
    sampling = Sampling(
        n=n, temperature=0.8, top_p=top_p, max_tokens=tokens, seed=cfg.seed, stop=list(CODE_STOP)
    )
    with VLLMEngine(
        cfg.policy.path, seed=cfg.seed, max_model_len=cfg.engine.max_model_len, kv_cache_memory_bytes=kv
    ) as engine:
        start = time.perf_counter()
        outs = engine.generate(prompts, sampling)
        seconds = time.perf_counter() - start
    out_tokens = sum(len(c.token_ids or []) for out in outs for c in out)
    Path(texts_path).write_text(json.dumps([c.text for out in outs for c in out]))
    row = {"top_p": top_p, "sampler": os.environ[ENV], "seconds": round(seconds, 1), "tokens": out_tokens}
    print(json.dumps({**row, "tok_s": round(out_tokens / seconds, 2)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "code_rlcf_qwen_repair.yaml"))
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--settings", nargs="+", default=["0.95:sort", "0.95:topk", "1.0:sort"])
    ap.add_argument("--top-p", type=float, default=0.95, help=argparse.SUPPRESS)
    ap.add_argument("--texts", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.pipeline, args.problems, args.n, args.tokens, args.top_p, args.texts)
        return
    rows, texts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            top_p, _, sampler = setting.partition(":")
            if sampler not in ("sort", "topk"):
                raise SystemExit(f"--settings {setting}: expected TOP_P:sort or TOP_P:topk")
            path = str(Path(tmp) / f"{setting}.json")
            cmd = [sys.executable, __file__, "--child", "--pipeline", args.pipeline, "--problems"]
            cmd += [str(args.problems), "--n", str(args.n), "--tokens", str(args.tokens)]
            cmd += ["--top-p", top_p, "--texts", path]
            rows.append(run_child(cmd, setting, env={**os.environ, ENV: sampler}, cwd=REPO))
            texts[setting] = json.loads(Path(path).read_text())
            print(json.dumps(rows[-1]), flush=True)
    base, first = rows[0], args.settings[0]
    for setting, row in zip(args.settings, rows, strict=True):
        same = sum(a == b for a, b in zip(texts[first], texts[setting], strict=True))
        print(
            f"top_p {row['top_p']:g}, {row['sampler']}: {row['tokens']} tokens in {row['seconds']:.0f} s, "
            f"{row['tok_s']:.1f} tokens/s; speed vs {first}: {row['tok_s'] / base['tok_s']:.2f}; "
            f"{same} of {len(texts[first])} samples identical to {first}'s"
        )


if __name__ == "__main__":
    main()
