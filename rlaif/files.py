"""Writing and reading the project's own files safely.

Guarantees:
- :func:`atomic_writer` / :func:`atomic_write_text` / :func:`atomic_write_json`: a reader sees either
  the old file or the complete new one, never a torn write: the text goes to a temp file in the same
  directory, is flushed and fsynced, then renamed over the target (``os.replace`` is atomic on POSIX
  within one file system). On any error the temp file is removed and the old file is untouched.
  The new file gets the mode the user's umask gives (0644 under umask 022), like any file ``open``
  creates; an existing file's own mode is not carried over.
- :func:`apply_umask` gives a directory a library saved into (safetensors writes 0600 files) the
  same umask modes.
- :func:`load_yaml_mapping` names the file in every error (missing, unreadable, bad YAML, not a
  mapping) with a one-line :class:`~rlaif.errors.ConfigError`.

Non-guarantees: the directory entry itself is not fsynced, so after a power loss (not a process
crash) the rename may be lost and the old file reappear; nothing here locks against two concurrent
writers (the last rename wins).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rlaif.errors import ConfigError


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, exclusively created temp file next to ``path``.

    Why not ``tempfile.mkstemp``: it creates the file 0600 whatever the umask, and the rename then
    makes every file we write owner-only (a report or metrics file a group cannot read). Created with
    0666 here, the kernel applies the user's umask as for any new file.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temp file name for {path.name}")


def umask_mode(directory: bool = False) -> int:
    """The mode the user's umask gives a new file (or directory), read without changing the umask
    where ``/proc`` says it (Linux >= 4.7); elsewhere it is set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                mask = int(line.split()[1], 8)
                break
        else:
            raise OSError
    except (OSError, ValueError):
        mask = os.umask(0o077)
        os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def apply_umask(root: str | os.PathLike) -> int:
    """Give every file and directory under ``root`` (itself included) the umask's mode; the count of
    modes changed.

    Why: safetensors >= 0.8 writes through a temp file created 0600 and renames it, so every saved
    model or adapter is owner-only whatever the umask. Call this on a directory a library saved into,
    before it is renamed into place. A file with any execute bit is treated as a directory would be
    (0777 less the umask), so scripts stay runnable.
    """
    root = Path(root)
    file_mode, dir_mode = umask_mode(), umask_mode(directory=True)
    changed = 0
    for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
        if path.is_symlink():
            continue
        current = path.stat().st_mode & 0o7777
        wanted = dir_mode if path.is_dir() or current & 0o111 else file_mode
        if current != wanted:
            path.chmod(wanted)
            changed += 1
    return changed


@contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[TextIO]:
    """A text handle whose content replaces ``path`` only when the ``with`` block ends cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
