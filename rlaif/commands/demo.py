"""``rlaif demo``: the embedded default job behind ``make demo``.

Until the full self-improvement demo lands, it is a smoke run: build the tiny model locally and sample
a few chat completions from it with the real vLLM engine, proving the install works end to end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def demo(
    workdir: Path = typer.Option(Path("runs/demo"), help="Where the demo writes its model and outputs."),
) -> None:
    """Run the demo (currently: a smoke generation on a locally built tiny model)."""
    from rlaif.engines.base import Sampling
    from rlaif.engines.vllm import VLLMEngine
    from rlaif.records import write_jsonl
    from rlaif.tiny_model import build_tiny_model

    model_dir = build_tiny_model(workdir / "tiny_model", seed=0, steps=40)
    prompts = [
        [{"role": "user", "content": "Write a function that adds two numbers."}],
        [{"role": "user", "content": "How do I bake bread?"}],
    ]
    engine = VLLMEngine(model_dir, max_model_len=512, kv_cache_memory_bytes=256 << 20)
    try:
        out = engine.generate(prompts, Sampling(n=2, max_tokens=32, temperature=0.8, seed=0))
    finally:
        engine.close()
    rows = [{"prompt": p, "samples": [c.text for c in comps]} for p, comps in zip(prompts, out)]
    write_jsonl(workdir / "smoke_samples.jsonl", rows)
    for row in rows:
        print(f"> {row['prompt'][0]['content']}")
        for text in row["samples"]:
            print(f"  - {text!r}")
    print(f"demo smoke run ok: samples in {workdir / 'smoke_samples.jsonl'}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
