"""Which rlaif code a run is made by: a fingerprint of the running package's files.

Why: heavy imports sit inside functions, so a module first imported late in a long run is read from
disk then. If the installed rlaif changes under a run (an editable install and a ``git pull`` or
``git merge``), one process would mix two code versions: a run begun before a merge failed stages
later with ``ImportError: cannot import name ...``, and nothing said that its stages were made by two
different versions. The runner takes a fingerprint when it starts, records it (events, status, each
stage's manifest), compares it with the files on disk before every stage and stops the run cleanly
when they differ (:func:`check_unchanged`); a fresh process on the new code then resumes. A run told to
go on (``rlaif run --allow-code-change``: a docstring edited mid-run) warns instead, and records each
change (:func:`change_record`: the stage it came before, the new digest, the files) under ``changes`` in
``status.json`` and in the ``code_version`` of every stage made after it, whose ``digest`` stays the
code the process started with: those stages may mix the two versions, and a resumed run names them as
made by other code.

The fingerprint: the package version plus a SHA-256 over every file under the package directory
(found from ``rlaif.__file__``) and, in a checkout or an editable install, under its top-level
``prompts/`` (the shipped judge and feedback templates, which a wheel carries inside the package),
sorted by path, names and contents hashed. ``__pycache__`` folders, compiled files (``.pyc``,
``.pyo``), hidden files (editor swap files) and editor backups (``~``, ``#``) are left out, so
importing or opening a file in an editor does not change it, while any source, template or asset file
does. Cost: 213 files (2.0 MB) on the shared 2-core dev machine, file system cache warm: median 10 ms
at load 3.5 (package only), 25 ms (20 to 41) at load 10 to 15 with the templates; so it is taken
before every stage.

Non-guarantees: a change between the process's start and the runner's first fingerprint is not seen
(modules imported before it may be older than the files hashed); changes to other installed packages
(torch, vllm, trl) and to the user's own templates (``RLAIF_PROMPTS_PATH``) are not tracked; two
processes that import the same files share a fingerprint even if one of them patched a module in
memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.errors import RlaifError

SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_SUFFIXES = (".pyc", ".pyo", "~")
SHOWN_FILES = 3  # changed files named in a message; the rest are counted


@dataclass(frozen=True)
class Fingerprint:
    """A package's version and content digest; ``files`` maps each file (``rlaif/x.py``) to its own
    digest, so two fingerprints of one process can say which files changed."""

    version: str
    digest: str
    files: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def record(self) -> dict[str, Any]:
        """What manifests, events and the status keep (not the per-file digests)."""
        return {"version": self.version, "digest": self.digest, "files": len(self.files)}


def record_label(record: dict) -> str:
    """A recorded fingerprint (:meth:`Fingerprint.record`) as output and the report show it."""
    return f"rlaif {record.get('version')}, code {record.get('digest')}"


def package_dir() -> Path:
    """The folder of the rlaif package this process imported."""
    import rlaif

    return Path(rlaif.__file__).resolve().parent


def _tracked(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if any(part in SKIPPED_DIRS or part.startswith(".") for part in rel.parts[:-1]):
        return False
    name = rel.name
    return not (name.startswith((".", "#")) or name.endswith(SKIPPED_SUFFIXES)) and path.is_file()


def code_dirs() -> list[Path]:
    """The running rlaif's package folder, and the checkout's ``prompts/`` beside it when there is one."""
    from rlaif.prompts import REPO_PROMPTS_DIR

    return [package_dir()] + ([REPO_PROMPTS_DIR.resolve()] if REPO_PROMPTS_DIR.is_dir() else [])


def fingerprint(root: Path | None = None, version: str | None = None) -> Fingerprint:
    """The fingerprint of the files under ``root`` (default: :func:`code_dirs`, the running rlaif);
    ``version`` defaults to the running package's ``__version__``."""
    if version is None:
        import rlaif

        version = rlaif.__version__
    total = hashlib.sha256(version.encode())
    files: dict[str, str] = {}
    for folder in [Path(root)] if root is not None else code_dirs():
        for path in sorted(p for p in folder.rglob("*") if _tracked(p, folder)):
            name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            files[name] = digest
            total.update(f"{name}\0{digest}\n".encode())
    return Fingerprint(version=version, digest=total.hexdigest()[:16], files=files)


def changed_files(before: Fingerprint, after: Fingerprint) -> list[str]:
    """The files that differ, sorted: changed, added (``+``) or removed (``-``)."""
    out = []
    for name in sorted(set(before.files) | set(after.files)):
        old, new = before.files.get(name), after.files.get(name)
        if old != new:
            out.append(name if old and new else f"{'+' if new else '-'}{name}")
    return out


def describe_change(before: Fingerprint, after: Fingerprint) -> str:
    """A few of the changed files, then how many more (``rlaif/a.py, +rlaif/b.py and 4 more``)."""
    files = changed_files(before, after)
    shown = ", ".join(files[:SHOWN_FILES]) or "no file (the version changed)"
    more = len(files) - SHOWN_FILES
    text = f"{shown} and {more} more" if more > 0 else shown
    if before.version != after.version:
        text += f"; version {before.version} -> {after.version}"
    return text


class CodeChanged(RlaifError):
    """rlaif's files changed since the run started; raised before a stage, never inside one. ``now``:
    the fingerprint of the files on disk (a run told to go on compares the next stage with it)."""

    def __init__(self, stage: str, reason: str, files: list[str], now: Fingerprint | None = None):
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.files = files
        self.now = now


def check_unchanged(started: Fingerprint, stage: str, root: Path | None = None) -> Fingerprint:
    """The current fingerprint, after checking it equals ``started``; raises :class:`CodeChanged`
    with the one-line message the run stops with."""
    now = fingerprint(root, started.version)  # the version in memory cannot change; __init__.py can
    if now.digest == started.digest:
        return now
    raise CodeChanged(
        stage,
        f"rlaif's code changed since this run started ({describe_change(started, now)}): stopped before "
        f"{stage} so that one process does not mix two code versions; the finished stages are kept, "
        "and running the same command again resumes on the new code",
        changed_files(started, now),
        now,
    )


def going_on(before: Fingerprint, now: Fingerprint, stage: str) -> str:
    """The one-line warning of a run told to go on (``rlaif run --allow-code-change``) when the files
    changed before ``stage``."""
    return (
        f"rlaif's code changed under this run ({describe_change(before, now)}): going on with {stage} "
        "(--allow-code-change), so this process may mix two code versions; the change is recorded in "
        "the events, status.json and the manifests of the stages made from here on"
    )


def change_record(stage: str, now: Fingerprint, files: list[str]) -> dict[str, Any]:
    """One change a run went on through, as status.json and the later stages' manifests keep it
    (under ``changes`` beside the started code's :meth:`Fingerprint.record`)."""
    return {"before_stage": stage, "digest": now.digest, "version": now.version, "files": files}


def other_code(manifest: dict | None, now: Fingerprint) -> dict | None:
    """The code record of a finished stage when it was made by other code than ``now`` (None when the
    same, or when the manifest has no record: stages finished before fingerprints were kept)."""
    record = (manifest or {}).get("code_version")
    if not isinstance(record, dict) or record.get("digest") == now.digest:
        return None
    return record
