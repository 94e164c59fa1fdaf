"""Shared by the training benchmarks: model sizes built locally (random weights, no downloads), and the
``--device`` / ``--precision`` choice applied to both sides of a comparison.

Sizes: ``tiny`` and ``25m`` use the tiny model's 512-token vocabulary; ``100m`` is shaped like a real
small LM - a 32,768-token byte-level BPE vocabulary (trained here on a synthetic corpus, so the LM
head and softmax cost what they cost on a real model), 12 layers of width 768, ~136M parameters.

``--device cpu`` hides CUDA from this process and its children (set before torch is imported);
``--device cuda`` fails clearly without a GPU; ``auto`` takes CUDA when there is one. ``--precision
auto`` is bf16 mixed precision on a bf16 GPU, fp32 on the CPU; both sides always get the same.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

SIZES = {
    "tiny": dict(hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=256),
    "25m": dict(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=8, intermediate_size=1408),
    "100m": dict(
        vocab_size=32768,
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        num_kv_heads=12,
        intermediate_size=2048,
    ),
}


def add_device_args(parser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="Both sides: fp32, or bf16 autocast over fp32 weights; auto = bf16 on a bf16 GPU, else fp32.",
    )


def resolve_device(choice: str) -> str:
    """Call before anything imports torch: ``cpu`` must hide CUDA from this process and its children."""
    if choice == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if choice == "cuda":
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    return "cpu"


def resolve_precision(choice: str, device: str) -> str:
    import torch

    if choice != "auto":
        if choice == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
            raise SystemExit("--precision bf16: this GPU does not support bf16")
        return choice
    return "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def _synthetic_corpus(path: Path, seed: int = 0, lines: int = 12000) -> Path:
    """Pseudo-words from syllables, enough distinct pairs for BPE to learn a 32k vocabulary (~10 s)."""
    from rlaif.tiny_model import BUNDLED_CORPUS

    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "sh", "ch", "qu", "x", "y"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(1, 5))) for _ in range(120000)})
    text = [BUNDLED_CORPUS.read_text(encoding="utf-8")]
    text += [" ".join(rng.choice(words) for _ in range(12)) for _ in range(lines)]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def build_policy(size: str, workdir: Path, seed: int = 0) -> Path:
    """A causal-LM directory of the given size (tokenizer included); random weights."""
    from rlaif.tiny_model import TinyModelSpec, build_tiny_model

    spec = TinyModelSpec(**SIZES[size])
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = _synthetic_corpus(workdir / "corpus.txt", seed) if spec.vocab_size > 512 else None
    return build_tiny_model(workdir / f"policy_{size}", seed=seed, spec=spec, corpus=corpus)


def describe(model_dir: Path) -> str:
    """ "136M params, vocab 32768" from the config, without loading weights."""
    import json

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    h, layers, inter, vocab = (
        cfg["hidden_size"],
        cfg["num_hidden_layers"],
        cfg["intermediate_size"],
        cfg["vocab_size"],
    )
    params = 2 * vocab * h + layers * (4 * h * h + 3 * h * inter + 2 * h) + h
    return f"{params / 1e6:.{0 if params >= 1e7 else 1}f}M params, vocab {vocab}"
