"""``rlaif docs config``: write (or check) the config reference generated from the config models."""

from __future__ import annotations

from pathlib import Path

import typer

from rlaif.commands.output import emit
from rlaif.errors import ConfigError

DEFAULT_OUT = Path("docs/config.md")


def config(
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Where to write the reference."),
    check: bool = typer.Option(
        False, "--check", help="Do not write; exit 2 when the file differs from the models."
    ),
) -> None:
    """The reference of every run-config key (type, default, meaning), from the pydantic models."""
    from rlaif.commands.config_reference import GENERATED_BY, render_markdown

    text = render_markdown()
    if check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current != text:
            raise ConfigError(f"{out}: out of date with the config models; regenerate with `{GENERATED_BY}`")
        emit(f"ok: {out} is up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    emit(f"wrote {out}")


def register(app: typer.Typer) -> None:
    docs_app = typer.Typer(help="Generated documentation.", no_args_is_help=True)
    docs_app.command("config")(config)
    app.add_typer(docs_app, name="docs")
