"""User-facing errors.

Anything the user can fix (a bad config, a missing file, an unreachable server, an invalid sampling
value) raises :class:`RlaifError` or a subclass with a message that names the file, field or record.
The CLI prints that message on one line and exits non-zero without a stack trace; any other exception
is a bug in rlaif and keeps its traceback.
"""


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
    exc, *, limit: int = 3, root: str = "(top level)", prefix: str = "", config_keys: bool = False
) -> str:
    """A pydantic ValidationError as one line: ``field 'a.b': msg; ... (+N more)``.

    ``prefix`` is put before every field path (``"feedback.options."``); ``root`` names an error on
    the object itself. With ``config_keys`` (a config file, where users think in keys) an unknown
    field reads ``unknown key 'a.b'`` and a missing one ``missing required key 'a.b'``.
    """
    errors = exc.errors()
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(x) for x in err["loc"])
        loc = prefix + loc if loc else (prefix.rstrip(".") or root)
        if config_keys and err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        elif config_keys and err["type"] == "missing":
            parts.append(f"missing required key '{loc}'")
        else:
            parts.append(f"field '{loc}': {err['msg']}")
    more = len(errors) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
