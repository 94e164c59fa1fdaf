"""Throughput of VLLMEngine vs raw ``vllm.LLM.generate`` on the same engine instance, in one run.

Both paths drive the same ``vllm.LLM`` (so start-up, KV cache and kernels are identical); the
difference is rlaif's request building and its conversion to typed Completion records. Runs are
interleaved (raw, ours, raw, ours, ...) and the median is reported, so background load hits both.

    .venv/bin/python benchmarks/engine_overhead.py [--prompts 64 --n 4 --tokens 64 --repeats 3]

Target: ratio (ours / raw tokens per second) >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--logprobs", type=int, default=None, help="also request top-k logprobs")
    args = ap.parse_args()

    from vllm import SamplingParams

    from rlaif.engines.base import Sampling
    from rlaif.engines.vllm import VLLMEngine
    from rlaif.tiny_model import TinyModelSpec, build_tiny_model

    spec = TinyModelSpec(
        vocab_size=512, hidden_size=512, num_layers=6, num_heads=8, num_kv_heads=8, intermediate_size=1408
    )
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(tmp, seed=0, spec=spec)
        import json

        cfg = json.loads((model_dir / "config.json").read_text())
        engine = VLLMEngine(model_dir, max_model_len=512, kv_cache_memory_bytes=1 << 30, progress=False)
        n_params = sum(
            p.numel()
            for p in __import__("safetensors.torch")
            .torch.load_file(str(model_dir / "model.safetensors"))
            .values()
        )
        prompts = [f"Question {i}: explain how to sort a list of {i} numbers." for i in range(args.prompts)]
        ours = Sampling(n=args.n, max_tokens=args.tokens, temperature=1.0, seed=1, logprobs=args.logprobs)
        raw = SamplingParams(
            n=args.n, max_tokens=args.tokens, temperature=1.0, seed=1, logprobs=args.logprobs
        )

        def run_raw() -> tuple[float, int]:
            t = time.perf_counter()
            out = engine.llm.generate(prompts, raw, use_tqdm=False)
            return time.perf_counter() - t, sum(len(c.token_ids) for o in out for c in o.outputs)

        def run_ours() -> tuple[float, int]:
            t = time.perf_counter()
            out = engine.generate(prompts, ours)
            return time.perf_counter() - t, sum(len(c.token_ids) for comps in out for c in comps)

        run_raw()  # warm-up (prefix cache, allocator)
        raw_tps, our_tps = [], []
        for _ in range(args.repeats):
            dt, toks = run_raw()
            raw_tps.append(toks / dt)
            dt2, toks2 = run_ours()
            our_tps.append(toks2 / dt2)
            assert toks == toks2, "both paths must generate the same tokens"
        engine.close()

    r, o = statistics.median(raw_tps), statistics.median(our_tps)
    print(
        f"model: {n_params / 1e6:.1f}M params, hidden {cfg['hidden_size']}, layers {cfg['num_hidden_layers']}"
    )
    print(
        f"workload: {args.prompts} prompts x n={args.n} x {args.tokens} tokens, logprobs={args.logprobs}, repeats={args.repeats}"
    )
    print(f"raw vllm.LLM.generate : {r:10.1f} tokens/s  (runs: {', '.join(f'{x:.0f}' for x in raw_tps)})")
    print(f"rlaif VLLMEngine      : {o:10.1f} tokens/s  (runs: {', '.join(f'{x:.0f}' for x in our_tps)})")
    print(f"ratio ours/raw        : {o / r:.3f}")


if __name__ == "__main__":
    main()
