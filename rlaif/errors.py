"""User-facing errors.

Anything the user can fix (a bad config, a missing file, an unreachable server, an invalid sampling
value) raises :class:`RlaifError` or a subclass with a message that names the file, field or record.
The CLI prints that message on one line and exits non-zero without a stack trace; any other exception
is a bug in rlaif and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class RlaifError(Exception):
    """An error the user can act on; the message is shown as is."""


class ConfigError(RlaifError):
    """A malformed or inconsistent configuration value."""


class RecordError(RlaifError):
    """A malformed record in a data file (the message names file and line)."""


class EngineError(RlaifError):
    """The generation engine could not start or could not serve a request."""


class TemplateError(RlaifError):
    """A prompt template is missing, malformed, or was rendered without a required variable."""


def describe_validation_error(
    exc, *, limit: int = 3, root: str = "(top level)", prefix: str = "", config_keys: bool = False,
    model: Any = None,
) -> str:  # fmt: skip
    """A pydantic ValidationError as one line: ``field 'a.b': msg; ... (+N more)``.

    ``prefix`` is put before every field path (``"feedback.options."``); ``root`` names an error on
    the object itself. With ``config_keys`` (a config file, where users think in keys) an unknown
    field reads ``unknown key 'a.b'`` and a missing one ``missing required key 'a.b'``; given the
    validated ``model`` class, an unknown key also names the key the user probably meant (a moved key
    such as ``temperature`` -> ``sampling.temperature``, a renamed key, or a near spelling).
    """
    errors = exc.errors()
    if config_keys:  # an unknown key first: a misspelt key is also the likeliest cause of a missing one
        errors = sorted(errors, key=lambda e: e["type"] != "extra_forbidden")
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(x) for x in err["loc"])
        loc = prefix + loc if loc else (prefix.rstrip(".") or root)
        if config_keys and err["type"] == "extra_forbidden":
            hint = suggest_key(model, err["loc"]) if model is not None else None
            parts.append(f"unknown key '{loc}'" + (f" (did you mean '{prefix}{hint}'?)" if hint else ""))
        elif config_keys and err["type"] == "missing":
            parts.append(f"missing required key '{loc}'")
        else:
            parts.append(f"field '{loc}': {err['msg']}")
    more = len(errors) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _model_in(annotation: Any) -> Any:
    """The pydantic model class an annotation holds (``Model``, ``Model | None``), else None."""
    from typing import get_args

    from pydantic import BaseModel

    candidates = [annotation, *get_args(annotation)]
    return next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)


def suggest_key(model: Any, loc: tuple) -> str | None:
    """The key path the user probably meant for the unknown key at ``loc`` in ``model``: the same
    name one level down (a key moved into a nested block), else the closest spelling among its
    siblings; None when nothing is close."""
    import difflib

    parent = model
    for part in loc[:-1]:
        field = getattr(parent, "model_fields", {}).get(part)
        parent = _model_in(field.annotation) if field is not None else None
        if parent is None:
            return None
    key, fields = str(loc[-1]), parent.model_fields
    head = ".".join(str(x) for x in loc[:-1])
    head = head + "." if head else ""
    renamed = getattr(parent, "renamed_keys", {})  # a model's old key names (e.g. TRL's vocabulary)
    if isinstance(renamed, dict) and key in renamed:
        return f"{head}{renamed[key]}"
    for name, field in fields.items():
        sub = _model_in(field.annotation)
        if sub is not None and key in sub.model_fields:
            return f"{head}{name}.{key}"
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
    return f"{head}{close[0]}" if close else None
