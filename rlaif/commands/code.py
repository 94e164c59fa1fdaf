"""``rlaif eval-code``: execute code samples against their problems' tests and print pass@k as JSON.

The problems and samples files are fully checked (unknown task ids, missing fields) before any
sandbox worker starts; problems with a reference solution are then validated in the sandbox (a broken
problem is reported as one, not blamed on its samples). The sandbox is imported inside the command, so
``rlaif --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlaif.commands.output import emit
from rlaif.errors import ConfigError


def _parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--k must be comma-separated positive integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise ConfigError(f"--k must be comma-separated positive integers, got {text!r}")
    return ks


def eval_code(
    problems: Path = typer.Option(..., help="HumanEval / MBPP / MBPP+ problems (.jsonl, .jsonl.gz, .json)."),
    samples: Path = typer.Option(..., help="human-eval samples: JSONL lines with task_id and completion."),
    k: str = typer.Option("1,10", help="Comma-separated k values for pass@k."),
    timeout: float = typer.Option(3.0, min=0.1, help="Seconds per test (the whole program gets 4x)."),
    workers: int | None = typer.Option(None, min=1, help="Parallel sandbox workers (default: CPU cores)."),
    out: Path | None = typer.Option(
        None, help="Per-sample results JSONL (default: <samples>_results.jsonl)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr."),
    unsafe_no_isolation: bool = typer.Option(
        False,
        "--unsafe-no-isolation",
        help="Run the samples even where nothing can isolate them (not root, "
        "no user namespace): as your own user, with your files and network in reach.",
    ),
    isolation: str | None = typer.Option(
        None,
        help="Where nothing can isolate the samples: 'required' refuses, 'none' runs them as your own "
        "user (as --unsafe-no-isolation). Default: refuse unless RLAIF_SANDBOX_ISOLATION=none.",
    ),
    validate: bool = typer.Option(
        True, help="Check problems with a reference solution first (reference passes, a None answer fails)."
    ),
    check_cache: bool = typer.Option(
        True,
        help="Remember those checks per problem content, limits and rlaif version (in "
        "~/.cache/rlaif/problem-checks, or $RLAIF_CACHE_DIR; delete it to clear).",
    ),
) -> None:
    """Run every sample in the sandbox; write per-sample results; print pass@k, statuses, samples/s."""
    from rlaif.code.evaluate import run_eval_code
    from rlaif.sandbox.policy import allow_unisolated

    try:
        allow = allow_unisolated(isolation)
    except ValueError as exc:
        raise ConfigError(f"--isolation: {exc}") from None
    if unsafe_no_isolation and allow is False:
        raise ConfigError("--unsafe-no-isolation contradicts --isolation required")
    summary = run_eval_code(
        problems,
        samples,
        ks=_parse_ks(k),
        timeout_s=timeout,
        workers=workers,
        out=out,
        progress=progress,
        allow_unisolated=True if unsafe_no_isolation else allow,
        validate=validate,
        check_cache=check_cache,
    )
    emit(json.dumps(summary, indent=2))


def register(app: typer.Typer) -> None:
    app.command("eval-code")(eval_code)
