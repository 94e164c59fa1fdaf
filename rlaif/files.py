"""Writing and reading the project's own files safely.

Guarantees:
- :func:`atomic_writer` / :func:`atomic_write_text` / :func:`atomic_write_json`: a reader sees either
  the old file or the complete new one, never a torn write: the text goes to a temp file in the same
  directory, is flushed and fsynced, then renamed over the target (``os.replace`` is atomic on POSIX
  within one file system). On any error the temp file is removed and the old file is untouched.
- :func:`load_yaml_mapping` names the file in every error (missing, unreadable, bad YAML, not a
  mapping) with a one-line :class:`~rlaif.errors.ConfigError`.

Non-guarantees: the directory entry itself is not fsynced, so after a power loss (not a process
crash) the rename may be lost and the old file reappear; nothing here locks against two concurrent
writers (the last rename wins).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rlaif.errors import ConfigError


@contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[TextIO]:
    """A text handle whose content replaces ``path`` only when the ``with`` block ends cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_writer(path) as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike, data: Any, **dump_options: Any) -> None:
    """``data`` as indented JSON plus a final newline (``dump_options`` go to ``json.dumps``)."""
    atomic_write_text(path, json.dumps(data, indent=2, **dump_options) + "\n")


def load_yaml_mapping(path: str | os.PathLike, what: str = "config file") -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is an empty mapping); errors name the file
    and, for a syntax error, the line."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the {what} ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
