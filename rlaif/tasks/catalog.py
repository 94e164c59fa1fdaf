"""Named problem sets and training corpora that plug-ins register, so the pipeline reads them by name.

Why: the demo's synthetic code tasks (and any user's generated task set) are data the pipeline must
be able to use (``prompts.kind: demo_code``, ``build_tiny.corpus: demo:code``) without importing the
module that makes them. A plug-in module calls :func:`register_problem_set` / :func:`register_corpus`
when imported; the lookups import the modules listed in :data:`PLUGIN_MODULES` first (by name, as
entry points would), then answer from the registry.

Guarantees: a name registered twice by different functions is an error (never a silent override);
an unknown name is an error listing the known ones. Non-guarantee: a plug-in module that fails to
import is reported as that import's error, not skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rlaif.errors import ConfigError

PLUGIN_MODULES: list[str] = ["rlaif.demo.tasks"]
"""Modules imported before a lookup; each registers what it provides (extend it for your own)."""

ProblemSet = Callable[[str], list]
"""split ("train", "heldout" or "all") -> records (CodeProblems for a code set)."""

Corpus = Callable[[Callable[[list[dict]], str]], str]
"""chat-template renderer (a conversation of role/content dicts -> text) -> the corpus text."""

_PROBLEM_SETS: dict[str, ProblemSet] = {}
_CORPORA: dict[str, Corpus] = {}


def _register(table: dict[str, Any], what: str, name: str, fn: Any) -> None:
    if table.get(name, fn) is not fn:
        raise ConfigError(f"{what} {name!r} is registered twice ({table[name]!r} and {fn!r})")
    table[name] = fn


def register_problem_set(name: str, loader: ProblemSet) -> None:
    _register(_PROBLEM_SETS, "problem set", name, loader)


def register_corpus(name: str, builder: Corpus) -> None:
    _register(_CORPORA, "corpus", name, builder)


def _load_plugins() -> None:
    for module in PLUGIN_MODULES:
        importlib.import_module(module)


def problem_set(name: str) -> ProblemSet:
    """The loader registered as ``name``."""
    _load_plugins()
    try:
        return _PROBLEM_SETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown problem set {name!r} (known: {', '.join(sorted(_PROBLEM_SETS))})"
        ) from None


def corpus(name: str) -> Corpus | None:
    """The corpus builder registered as ``name``, or None (the name is then a file path)."""
    _load_plugins()
    return _CORPORA.get(name)
