"""Where a command's output goes: results on stdout, everything else on stderr, quiet by default.

Why: ``rlaif run ... | jq`` must see only the result. Libraries print to stdout (transformers'
per-step log dicts, vLLM's logger, C++ warnings from torch), and spawned engine processes inherit the
file descriptor, so redirecting ``sys.stdout`` in Python is not enough. When the CLI runs as its own
process, :func:`route_stdout` keeps a duplicate of the real stdout for results and points fd 1 at
stderr; every other write, from Python, C or a child process, lands on stderr.

:func:`quiet_third_party` sets the environment variables and logger levels that silence vLLM,
transformers, datasets, accelerate, torch's C++ warnings and tqdm bars, in this process and in the
processes it spawns (they inherit the environment), when the CLI runs as its own process. ``rlaif -v``
skips it.

Guarantees: after :func:`route_stdout`, only :func:`emit` writes to the original stdout.
Non-guarantees: a library that opens ``/dev/tty`` itself is not redirected; warnings a library prints
before the CLI starts (none do today) are not silenced.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TextIO

_results: TextIO | None = None
_own_process = False  # set by route_stdout: the CLI owns this process and may change its settings

# Environment seen by vLLM's engine processes and by the libraries at import time.
QUIET_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "ACCELERATE_LOG_LEVEL": "error",
    "TORCH_CPP_LOG_LEVEL": "ERROR",
    "TQDM_DISABLE": "1",
    "PYTHONWARNINGS": "ignore",
    "TOKENIZERS_PARALLELISM": "false",
}
QUIET_FLAG = "RLAIF_QUIET"
QUIET_LOGGERS = ("vllm", "transformers", "datasets", "accelerate", "trl", "peft", "torch", "httpx")


def results() -> TextIO:
    """The stream for a command's result (the real stdout, also after :func:`route_stdout`)."""
    return _results if _results is not None else sys.stdout


def emit(text: object) -> None:
    """Write one result (a line, a JSON document, a table, a path) to the results stream."""
    text = str(text)
    stream = results()
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def route_stdout() -> None:
    """Keep the real stdout for :func:`emit` and point fd 1 (and ``sys.stdout``) at stderr.

    Only for a CLI process of its own: it changes process-wide file descriptors.
    """
    global _results, _own_process
    if _results is not None:
        return
    _own_process = True
    sys.stdout.flush()
    _results = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(2, 1)


def use_results_stream(stream: TextIO | None) -> None:
    """In-process use (tests calling ``rlaif.cli.main``): results go to ``stream``."""
    global _results
    _results = stream


def quiet_third_party(verbose: bool) -> None:
    """Silence library logs and progress bars unless ``verbose`` (``rlaif -v``).

    vLLM always logs to stderr (its default is stdout). Values a user already set are kept.
    """
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if verbose or not _own_process:  # in-process callers (tests) keep their own logging settings
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ[QUIET_FLAG] = "1"  # read by rlaif.train.progress (transformers' per-step log dicts)
    warnings.filterwarnings("ignore")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
