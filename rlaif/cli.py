"""The ``rlaif`` command line.

Start-up must stay fast (``rlaif --help`` < 2 s): command modules import torch/vllm/trl only inside
the command bodies. A :class:`rlaif.errors.RlaifError` is printed as one ``error:`` line with exit
status 2; anything else is a bug and keeps its traceback.

Run as its own process (the ``rlaif`` script, ``python -m rlaif.cli``), the CLI also: keeps stdout for
results only (:mod:`rlaif.commands.output`), quiets third-party logs unless ``-v``, exits 130/143 on
SIGINT/SIGTERM with one line saying what was kept and how to resume, and terminates every child
process (vLLM engine processes included) on every exit path (:mod:`rlaif.commands.interrupts`).
"""

from __future__ import annotations

import os
import sys

import typer

# vLLM logs to stdout by default, which would corrupt the JSON some commands print there.
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")

from rlaif.commands import interrupts, output
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
    "rlaif.commands.init",
    "rlaif.commands.export",
    "rlaif.commands.docs",
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


@app.callback()
def _top_level(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show vLLM/transformers/TRL logs, warnings and progress bars."
    ),
) -> None:
    """Make a model better from AI feedback: generate, judge, pair, train, repeat."""
    output.quiet_third_party(verbose)


_register_all()


def _wants_help(args: list[str]) -> bool:
    return not args or any(a in ("--help", "-h") for a in args)


def main(argv: list[str] | None = None) -> int:
    """Entry point. ``argv=None``: a process of its own (fd-level stdout routing, signal handlers);
    a list: in-process use (results to ``sys.stdout``, library prints to ``sys.stderr``)."""
    import contextlib

    own_process = argv is None
    args = sys.argv[1:] if argv is None else list(argv)
    if _wants_help(args):  # help text is the result here
        return _dispatch(args)
    if own_process:
        output.route_stdout()
        interrupts.install()
        import atexit

        atexit.register(interrupts.kill_children)
        try:
            return _dispatch(args)
        finally:
            interrupts.kill_children()
    output.use_results_stream(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return _dispatch(args)
    finally:
        output.use_results_stream(None)


def _dispatch(args: list[str]) -> int:
    """Run the command; once SIGINT/SIGTERM arrived, whatever the command ended with (our
    Interrupted, or an error a library raised while being interrupted) is reported as the interrupt."""
    try:
        code = _run_command(args)
    except BaseException:
        if interrupts.received_signal() is None:
            raise
        code = 1
    signum = interrupts.received_signal()
    if signum is not None:
        interrupts.kill_children()
        print(interrupts.message(signum), file=sys.stderr)
        return interrupts.EXIT_CODES.get(signum, 128 + signum)
    return code


def _run_command(args: list[str]) -> int:
    try:
        code = app(args=args, standalone_mode=False)
    except RlaifError as exc:
        if interrupts.received_signal() is None:  # else a consequence of the interrupt, reported as one
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # in-process use, where our handlers are not installed
        print(interrupts.message(2), file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer/click exit codes
        return int(exc.code or 0)
    except Exception as exc:
        usage_errors, aborts = _click_exception_types()
        if isinstance(exc, usage_errors):
            exc.show()
            return exc.exit_code
        if isinstance(exc, aborts):
            print("aborted", file=sys.stderr)
            return 1
        raise
    # typer returns the status of an explicit typer.Exit (and 130 for a KeyboardInterrupt it caught)
    return code if isinstance(code, int) else 0


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Typer >= 0.20 vendors click as ``typer._click`` and raises that copy's exceptions (an unknown
    option would otherwise escape as a traceback); older typer raises click's own."""
    import importlib

    usage_errors: list[type] = []
    aborts: list[type] = []
    for name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "ClickException"):
            usage_errors.append(module.ClickException)
        if hasattr(module, "Abort"):
            aborts.append(module.Abort)
    return tuple(usage_errors), tuple(aborts)


if __name__ == "__main__":
    sys.exit(main())
