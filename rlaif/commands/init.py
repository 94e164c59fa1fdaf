"""``rlaif init DIR``: copy the shipped prompt templates and pipelines into DIR for editing.

After ``pip install rlaif`` the shipped files live inside the package; a user who wants to change a
rubric or a pipeline copies them out, edits the copies, and points ``RLAIF_PROMPTS_PATH`` at
``DIR/prompts`` (user templates shadow shipped ones of the same name). Existing files are never
overwritten unless ``--force``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

from rlaif.commands.output import emit
from rlaif.commands.resources import shipped_dir
from rlaif.errors import ConfigError


def init(
    directory: Path = typer.Argument(..., help="Where to put prompts/ and pipelines/ (created if needed)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist there."),
) -> None:
    """Copy the shipped prompts/ and pipelines/ into DIRECTORY so you can edit them."""
    plan: list[tuple[Path, Path]] = []
    for kind in ("prompts", "pipelines"):
        source = shipped_dir(kind)
        if not source.is_dir():
            raise ConfigError(f"the shipped {kind}/ directory is missing from this install ({source})")
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                plan.append((path, directory / kind / path.relative_to(source)))
    clashes = [str(dest) for _, dest in plan if dest.exists()]
    if clashes and not force:
        raise ConfigError(
            f"{len(clashes)} file(s) already exist, e.g. {clashes[0]}; pass --force to overwrite them"
        )
    for source, dest in plan:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    emit(str(directory / "prompts"))
    emit(str(directory / "pipelines"))
    print(
        f"copied {len(plan)} files; use your copies with: export RLAIF_PROMPTS_PATH={directory / 'prompts'}"
        f" and rlaif run {directory / 'pipelines' / 'demo.yaml'}",
        file=sys.stderr,
    )


def register(app: typer.Typer) -> None:
    app.command("init")(init)
