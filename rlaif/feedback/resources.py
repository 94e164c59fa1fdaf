"""Prompt resources of the sources (affix sets, principle files, templates): locating and provenance.

Guarantees: a resource is found by name in prompts/ or by path, and its content hash is recorded, so a
pair names exactly the file it was made with; a missing or empty required field is a ConfigError
naming the file, the entry and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.errors import ConfigError
from rlaif.prompts import find_data_file
from rlaif.records import stable_hash


def resolve_resource(spec: str) -> tuple[Path, str]:
    """A prompt data file (by name in prompts/ or by path) and its content hash."""
    path = find_data_file(spec)
    return path, stable_hash(path.read_bytes())


def require_str(entry: Any, key: str, where: str) -> str:
    """A required, non-empty string field of a YAML entry."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    value = entry.get(key)
    if value is None:
        raise ConfigError(f"{where}: missing field '{key}'")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: field '{key}' must be a non-empty string")
    return value.strip()


def refuse_unknown(entry: dict, allowed: set[str] | list[str], where: str) -> None:
    """A ConfigError naming the fields of ``entry`` that are not ``allowed``."""
    extra = set(entry) - set(allowed)
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}")


def template_ref(template: Any) -> dict[str, str]:
    """Name + content hash of a loaded template, for provenance."""
    return {"name": template.name, "hash": template.content_hash}
