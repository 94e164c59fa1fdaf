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
