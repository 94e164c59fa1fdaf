"""``rlaif judge-eval``: measure a judge against human-labelled pairs and print a JSON summary.

The pairs file is read and the judge spec checked before the engine starts, so a bad file or a typo
in ``--judge`` fails in a second, not after vLLM's start-up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rlaif.commands.output import emit
from rlaif.errors import ConfigError
from rlaif.files import atomic_write_text


def _default_out(judge: str) -> Path:
    stem = Path(judge).stem if "/" in judge or judge.endswith(".j2") else judge.replace(":", "_")
    return Path("judge_eval") / f"{stem}.judgments.jsonl"


def _precheck_judge(judge: str) -> bool:
    """Validate the spec without an engine; returns whether the judge needs a model."""
    from rlaif.judges.custom import CallableJudge
    from rlaif.judges.spec import judge_spec

    spec = judge_spec(judge, where=f"--judge {judge}")
    if spec.kind == "python":
        return CallableJudge(judge, engine=None)._pass_engine
    return spec.kind != "length"


def judge_eval(
    model: str | None = typer.Option(None, help="Judge model directory (needed by template judges)."),
    server: str | None = typer.Option(
        None, help="Judge on an OpenAI-compatible server (e.g. `vllm serve`): its base URL, ending in /v1."
    ),
    served_model: str | None = typer.Option(
        None, help="With --server: the served model name (default: the first model the server lists)."
    ),
    pairs: Path | None = typer.Option(
        None, help="HH transcripts or {prompt, chosen, rejected} JSONL (.gz ok)."
    ),
    responses: Path | None = typer.Option(
        None, help="Instead of --pairs: `rlaif generate --out` rows; reports a pointwise judge's valid rate."
    ),
    judge: str = typer.Option("pairwise", help="Built-in name, template file, or package.module:function."),
    limit: int | None = typer.Option(None, min=1, help="Judge only the first N usable pairs."),
    out: Path | None = typer.Option(None, help="Where to write every judgment (JSONL)."),
    summary_out: Path | None = typer.Option(None, help="Also write the summary JSON here."),
    chain_of_thought: bool = typer.Option(False, help="Pairwise/principle judges: reason, then answer."),
    single_order: bool = typer.Option(False, help="Pairwise judges: show only one order (no swap)."),
    samples: int | None = typer.Option(None, min=1, help="Pointwise judges: sampled judgments each."),
    seed: int = typer.Option(0, help="Seed for the engine and for placing the chosen reply."),
    adapter: str | None = typer.Option(None, help="LoRA adapter directory to judge with."),
    max_model_len: int | None = typer.Option(None, help="Context length for vLLM."),
    kv_cache_gb: float | None = typer.Option(None, help="KV cache size in GiB (CPU)."),
    tensor_parallel_size: int = typer.Option(1, help="vLLM tensor parallelism."),
    split: str | None = typer.Option(
        None, help="Judge only a seeded half of the pairs: 'tune' or 'eval' (see --split-seed)."
    ),
    split_seed: int = typer.Option(13, help="Seed of the tune/eval split."),
    calibrate: bool | None = typer.Option(
        None,
        "--calibrate/--no-calibrate",
        help="Pairwise: remove the batch's first-position bias (logit space).",
    ),
    self_check: str | None = typer.Option(
        None, help="Pairwise: off | refuse | error when order agreement is at chance."
    ),
    guided: bool | None = typer.Option(
        None, "--guided/--no-guided", help="Pairwise: constrain the answer to a label."
    ),
) -> None:
    """Judge human-labelled pairs; print n, valid, invalid_rate, agreement, position consistency, ..."""
    from rlaif.judges import load_judge

    _check_choices(split, self_check, pairs, responses)
    eval_pairs, response_items, skipped = _load_inputs(pairs, responses, limit, split, split_seed)
    needs_model = _precheck_judge(judge)
    options = _judge_options(
        chain_of_thought=chain_of_thought,
        single_order=single_order,
        samples=samples,
        adapter=adapter,
        calibrate=calibrate,
        self_check=self_check,
        guided=guided,
    )
    _check_server(server, served_model, model, adapter)
    if model is None and server is None and needs_model:
        raise ConfigError(f"judge '{judge}' needs a model: pass --model PATH (or --server URL)")
    if server is not None:
        engine = _connect(server, served_model) if needs_model else None
    elif model is not None:
        engine = _start_engine(model, seed, max_model_len, kv_cache_gb, tensor_parallel_size, adapter)
    else:
        engine = None
    out_path = out or _default_out(judge)
    try:
        judge_obj = load_judge(judge, engine, **options)
        summary = _evaluate(judge, judge_obj, eval_pairs, response_items, out_path, seed)
    finally:
        if engine is not None:
            engine.close()
    summary = {
        **summary,
        "judge": judge,
        "pairs_file": None if pairs is None else str(pairs),
        "responses_file": None if responses is None else str(responses),
        "split": None if split is None else {"half": split, "seed": split_seed},
        "skipped": skipped,
        "judgments_file": str(out_path),
    }
    _emit_summary(summary, summary_out)
    print(f"wrote {summary['judgments']} judgments to {out_path}", file=sys.stderr)


# -- the steps of judge-eval -----------------------------------------------------------------------
def _check_choices(
    split: str | None, self_check: str | None, pairs: Path | None, responses: Path | None
) -> None:
    """The option values typer cannot check, before anything is read."""
    from rlaif.judges.eval import SPLITS

    if split is not None and split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if self_check is not None and self_check not in ("off", "refuse", "error"):
        raise ConfigError(f"--self-check must be off, refuse or error, got {self_check!r}")
    if (pairs is None) == (responses is None):
        raise ConfigError("pass exactly one of --pairs FILE and --responses FILE")


def _load_inputs(
    pairs: Path | None, responses: Path | None, limit: int | None, split: str | None, split_seed: int
) -> tuple[list, list, dict]:
    """(labelled pairs, unlabelled responses, skipped records): exactly one of the first two is filled."""
    from rlaif.judges.eval import load_eval_pairs, load_responses, split_pairs

    if responses is not None:
        response_items = load_responses(responses, limit=limit)
        if not response_items:
            raise ConfigError(f"{responses}: no responses")
        return [], response_items, {}
    eval_pairs, skipped = load_eval_pairs(pairs, limit=None if split else limit)
    if split is not None:
        eval_pairs = split_pairs(eval_pairs, split, split_seed)[:limit]
    if not eval_pairs:
        raise ConfigError(f"{pairs}: no usable pairs (skipped: {skipped or 'none'})")
    return eval_pairs, [], skipped


def _judge_options(*, chain_of_thought: bool, single_order: bool, **given: object) -> dict[str, object]:
    """The judge constructor options the command line set (unset ones keep the judge's defaults)."""
    options: dict[str, object] = {key: value for key, value in given.items() if value is not None}
    if chain_of_thought:
        options["chain_of_thought"] = True
    if single_order:
        options["both_orders"] = False
    return options


def _check_server(
    server: str | None, served_model: str | None, model: str | None, adapter: str | None
) -> None:
    """--server replaces --model; an adapter on a server is served by name (``--lora-modules``)."""
    if server is None:
        if served_model is not None:
            raise ConfigError("--served-model names a model on a server: pass --server URL too")
        return
    if model is not None:
        raise ConfigError("pass --model PATH (in-process vLLM) or --server URL, not both")
    if adapter is not None:
        raise ConfigError(
            "--adapter loads a LoRA adapter in-process; on a server, serve it with "
            "`vllm serve MODEL --enable-lora --lora-modules NAME=DIR` and pass --served-model NAME"
        )
    if not server.startswith(("http://", "https://")):
        raise ConfigError(f"--server needs an http(s):// base URL, got {server!r}")


def _connect(server: str, served_model: str | None):
    """The server's engine; an unreachable server or an unknown model is one error line, at once."""
    from rlaif.engines.openai import OpenAIEngine

    return OpenAIEngine(server, model=served_model)


def _start_engine(
    model: str, seed: int, max_model_len: int | None, kv_cache_gb: float | None, tp: int, adapter: str | None
):
    from rlaif.engines.vllm import VLLMEngine

    return VLLMEngine(
        model,
        seed=seed,
        max_model_len=max_model_len,
        kv_cache_memory_bytes=int(kv_cache_gb * (1 << 30)) if kv_cache_gb else None,
        tensor_parallel_size=tp,
        enable_lora=adapter is not None,
    )


def _evaluate(
    judge: str, judge_obj, eval_pairs: list, response_items: list, out_path: Path, seed: int
) -> dict:
    """Agreement on labelled pairs, or a pointwise judge's valid rate on unlabelled responses."""
    from rlaif.judges.eval import run_judge_eval, run_pointwise_validity

    if not response_items:
        return run_judge_eval(judge_obj, eval_pairs, out=out_path, seed=seed)
    if judge_obj.slot != "score":
        raise ConfigError(f"--responses needs a pointwise judge; '{judge}' compares pairs")
    return run_pointwise_validity(judge_obj, response_items, out=out_path)


def _emit_summary(summary: dict, summary_out: Path | None) -> None:
    """Print the summary JSON (stdout) and, if asked, write it atomically to ``summary_out``."""
    text = json.dumps(summary, indent=2)
    if summary_out is not None:
        atomic_write_text(summary_out, text + "\n")
    emit(text)


def register(app: typer.Typer) -> None:
    app.command("judge-eval")(judge_eval)
