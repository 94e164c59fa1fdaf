"""``rlaif prompts list|show|render``: see, inspect and try out prompt templates.

``render`` takes ``--var name=value``; a value that starts with ``[`` or ``{`` and is valid JSON is
passed as JSON (so ``--var conversation='[{"role": "user", "content": "hi"}]'`` works), anything else
as text. ``--var name=@file`` reads the value from a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rlaif.commands.output import emit
from rlaif.errors import ConfigError

prompts_app = typer.Typer(help="List, show and render prompt templates.", no_args_is_help=True)


@prompts_app.command("list")
def list_cmd() -> None:
    """Every template on the search path (name, variables, parser) and the prompt data files.

    A template that does not load (bad front matter, a Jinja syntax error) is named on stderr, one
    ``error:`` line each, after the others are listed, and the exit status is then 2: the listing is
    complete for the good ones, but a script or CI step running ``rlaif prompts list`` as a check must
    not pass while a template a run may use is broken.
    """
    from rlaif.prompts import list_data_files, scan_templates, search_path

    templates, broken = scan_templates()
    emit("search path: " + ", ".join(str(d) for d in search_path()))
    for tpl in templates:
        parser = tpl.parser.type if tpl.parser else "-"
        emit(f"{tpl.name:28s} vars=[{', '.join(tpl.variables)}] parser={parser}  {tpl.description}")
    files = list_data_files()
    if files:
        emit("data files:")
        for path in files:
            emit(f"  {path.stem:26s} {path}")
    for exc in broken:
        print(f"error: {exc}", file=sys.stderr)
    if broken:
        raise typer.Exit(2)


@prompts_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="Template name or file path.")) -> None:
    """Print a template's header (path, hash, variables, parser) and its full text."""
    from rlaif.prompts import load_template

    tpl = load_template(name)
    emit(f"# path: {tpl.path}")
    emit(f"# content_hash: {tpl.content_hash}")
    emit(f"# variables: {', '.join(tpl.variables) or '(none)'}")
    emit(f"# parser: {tpl.parser.model_dump(by_alias=True) if tpl.parser else None}")
    emit(tpl.text)


def _parse_vars(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--var expects name=value, got {item!r}")
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file():
                raise ConfigError(f"--var {key}: file not found: {path}")
            value = path.read_text(encoding="utf-8")
        parsed: object = value
        if value[:1] in "[{":
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
        out[key] = parsed
    return out


@prompts_app.command("render")
def render_cmd(
    name: str = typer.Argument(..., help="Template name or file path."),
    var: list[str] = typer.Option([], "--var", help="name=value (repeatable; @file reads a file)."),
) -> None:
    """Render a template with the given variables (missing ones are an error)."""
    from rlaif.prompts import load_template

    emit(load_template(name).render(**_parse_vars(var)))


def register(app: typer.Typer) -> None:
    app.add_typer(prompts_app, name="prompts")
