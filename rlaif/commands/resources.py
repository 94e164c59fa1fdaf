"""Where the shipped prompt templates and pipelines are, in a checkout and in an installed wheel.

A checkout (or an editable install) uses the top-level ``prompts/`` and ``pipelines/``; a wheel or a
non-editable ``pip install .`` carries copies as ``rlaif/_prompts`` and ``rlaif/_pipelines`` (see
setup.py). ``rlaif init DIR`` copies them out for editing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlaif.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parents[1]


def shipped_dir(kind: str) -> Path:
    """``kind``: "prompts" or "pipelines"; the checkout's directory if present, else the wheel's copy."""
    repo = _PACKAGE.parent / kind
    if repo.is_dir() and (_PACKAGE.parent / "pyproject.toml").is_file():
        return repo
    return _PACKAGE / f"_{kind}"


def resolve_pipeline(file: Path) -> Path:
    """``file`` if it exists; else the shipped pipeline of that name (``pipelines/demo.yaml``,
    ``demo.yaml`` or ``demo``), so README commands work from any directory after ``pip install``."""
    if file.exists():
        return file
    shipped = shipped_dir("pipelines")
    for name in (file.name, f"{file.name}.yaml"):
        candidate = shipped / name
        if candidate.is_file() and (len(file.parts) == 1 or file.parent.name == "pipelines"):
            print(f"note: {file} not found here; using the shipped pipeline {candidate}", file=sys.stderr)
            return candidate
    raise ConfigError(f"config file not found: {file}")
