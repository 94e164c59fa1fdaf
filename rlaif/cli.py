"""The ``rlaif`` command line.

Start-up must stay fast (``rlaif --help`` < 2 s): command modules import torch/vllm/trl only inside
the command bodies. A :class:`rlaif.errors.RlaifError` is printed as one ``error:`` line with exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

import typer

# vLLM logs to stdout by default, which would corrupt the JSON some commands print there.
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")

from rlaif.errors import RlaifError

app = typer.Typer(
    name="rlaif",
    help="Make a model better from AI feedback: generate, judge, pair, train, repeat.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each area owns one module under rlaif/commands with a ``register(app)`` function.
_COMMAND_MODULES = [
    "rlaif.commands.models",
    "rlaif.commands.prompts",
    "rlaif.commands.judge",
    "rlaif.commands.code",
    "rlaif.commands.train",
    "rlaif.commands.run",
]


def _register_all() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # area not built yet
                continue
            raise
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, standalone_mode=False)
    except RlaifError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer/click exit codes
        return int(exc.code or 0)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
