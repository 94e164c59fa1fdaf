"""Problem checks remembered across runs, so that a problems file is validated once, not per command.

Why: :func:`rlaif.code.validate.find_bad_problems` runs two programs per problem (its reference and
a ``return None`` answer) before any sample -- on HumanEval 164 x 3 samples that is a third of
``rlaif eval-code``'s time, spent again on every call with the same problems file.

Guarantees: an entry is used only for a problem with the same content (every field; of the metadata
all but the expected outputs the sandbox itself computes from the reference), the same sandbox
limits and isolation, the same Python, and the same rlaif sources that build and judge the jobs (a
hash of ``rlaif/sandbox``, ``rlaif/code`` and ``rlaif/records.py``, read once per process), so editing
the checker or the problem invalidates it for the next command.
Only conclusive outcomes are stored: a problem whose check timed out, was killed or met a sandbox
error is checked again next time. Each store is one ``O_APPEND`` write of whole lines, so runs at
once never tear an entry; a line that does not parse is ignored (its problem is checked again).
Non-guarantees: the cache is trusted like the problems file itself (whoever can write it can mark a
broken problem sound, or a sound one broken); entries of older rlaif sources are not pruned. Clear it
with ``rm -rf ~/.cache/rlaif/problem-checks`` (the folder follows ``RLAIF_CACHE_DIR``, else
``XDG_CACHE_HOME``), or turn it off with ``rlaif eval-code --no-check-cache``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from rlaif.records import CodeProblem, stable_hash

DERIVED_METADATA = ("expected", "reference_failed")  # computed by the sandbox from the reference


def default_dir() -> Path | None:
    """``$RLAIF_CACHE_DIR/problem-checks``, else under ``$XDG_CACHE_HOME`` or ``~/.cache``; None
    where there is no home to put it in (then nothing is remembered)."""
    if os.environ.get("RLAIF_CACHE_DIR"):
        return Path(os.environ["RLAIF_CACHE_DIR"]) / "problem-checks"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "rlaif" / "problem-checks"
    try:
        return Path.home() / ".cache" / "rlaif" / "problem-checks"
    except (RuntimeError, KeyError):  # no $HOME and no passwd entry (a bare uid in a container)
        return None


def fingerprint_of(package: Path) -> str:
    """The Python version and every source file under ``package`` that builds or judges a check's jobs
    (``sandbox/*.py``, ``code/*.py``, ``records.py``)."""
    h = hashlib.sha256(sys.version.encode())
    for path in sorted([*package.glob("sandbox/*.py"), *package.glob("code/*.py"), package / "records.py"]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def code_fingerprint() -> str:
    """This rlaif's :func:`fingerprint_of`, read once per process: the sources do not change under a
    running command, and a pipeline builds a cache per evaluation."""
    return fingerprint_of(Path(__file__).resolve().parent.parent)


def problem_key(problem: CodeProblem, setting: str) -> str:
    data = problem.model_dump(exclude={"metadata"})
    data["metadata"] = {k: v for k, v in problem.metadata.items() if k not in DERIVED_METADATA}
    return stable_hash(setting, json.dumps(data, sort_keys=True, default=repr), length=32)


def pool_setting(pool) -> str:
    """What besides the problem decides a check: the limits and the isolation the pool runs with."""
    limits = getattr(pool, "limits", None)
    iso = {k: v for k, v in (getattr(pool, "isolation", None) or {}).items() if k != "uid"}
    lim = dataclasses.asdict(limits) if dataclasses.is_dataclass(limits) else repr(limits)
    return json.dumps({"limits": lim, "isolation": iso}, sort_keys=True, default=repr)


class CheckCache:
    """``{problem key: None (sound) | reason (broken)}`` in one JSONL file per code fingerprint."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or default_dir()
        self.path = self.folder / f"{code_fingerprint()}.jsonl" if self.folder else None
        self.hits = self.stored = 0
        self._known: dict[str, str | None] | None = None

    def _load(self) -> dict[str, str | None]:
        if self._known is None:
            self._known = {}
            try:
                lines = (
                    self.path.read_text(encoding="utf-8", errors="replace").splitlines() if self.path else []
                )
            except OSError:
                lines = []
            for line in lines:
                try:
                    entry = json.loads(line)
                    key, bad = entry["key"], entry["bad"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn or foreign line: that problem is checked again
                if isinstance(key, str) and (bad is None or isinstance(bad, str)):
                    self._known[key] = bad
        return self._known

    def lookup(self, key: str) -> tuple[bool, str | None]:
        """(found, reason): reason None means the problem was found sound."""
        known = self._load()
        if key in known:
            self.hits += 1
            return True, known[key]
        return False, None

    def store(self, entries: Iterable[tuple[str, str | None]]) -> None:
        """Append conclusive outcomes; a cache that cannot be written only costs time next run."""
        entries = list(entries)
        if not entries or self.folder is None:
            return
        data = "".join(json.dumps({"key": k, "bad": b}) + "\n" for k, b in entries).encode()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            return
        self._load().update(entries)
        self.stored += len(entries)
