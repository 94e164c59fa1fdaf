"""Loading a user's code named as ``"package.module:attribute"`` (judges, feedback sources, reward
functions, JSON schemas).

Guarantees: every failure (no colon, module not importable, missing attribute, not callable when a
callable is required) raises one :class:`~rlaif.errors.RlaifError` naming what was being loaded and
the reference, so the CLI prints one line instead of a traceback. Dots after the colon walk
attributes (``pkg.mod:Class.method``).

Non-guarantees: importing runs the module's top-level code in this process, with this process's
rights; an exception other than ImportError raised by that code propagates unchanged (it is a bug in
the user's module, and its traceback is the useful part).
"""

from __future__ import annotations

import importlib
from typing import Any

from rlaif.errors import ConfigError, RlaifError


def import_object(
    ref: str,
    what: str,
    *,
    callable_required: bool = True,
    error: type[RlaifError] = ConfigError,
    form: str = "package.module:function",
) -> Any:
    """The object ``ref`` names; ``what`` ("judge", "feedback source", ...) starts every message and
    ``form`` shows the expected shape when ``ref`` has none."""
    module_name, colon, attr = ref.partition(":")
    if not colon or not module_name or not attr:
        raise error(f"{what} '{ref}' must look like '{form}'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{what} '{ref}': cannot import module '{module_name}' ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise error(f"{what} '{ref}': module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if callable_required and not callable(obj):
        raise error(f"{what} '{ref}': '{attr}' is not callable")
    return obj
