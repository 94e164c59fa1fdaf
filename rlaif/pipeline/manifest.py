"""Stage manifests and resumable chunked work.

Why: a run is hours of generation and training on real hardware; a crash, a pre-empted node or a
changed config must not cost finished work, and must never mix stale outputs into a new run.

Guarantees:
- a stage directory holds ``manifest.json`` only once the stage finished; it records the hash of the
  stage's config and of every input file, counts, outputs and timings, written atomically last;
- a stage is skipped on re-run only when its manifest exists and the config hash and input hashes
  match; otherwise it is re-run (a changed config or input invalidates it and, through the output
  hashes, every stage after it);
- :func:`run_chunks` processes items in fixed chunks and writes each chunk's result atomically as one
  file; a killed stage resumes at the first missing chunk, so no record is lost or duplicated, and as
  chunk boundaries depend only on the item list and chunk size, a resumed run gives the same records as
  an uninterrupted one (given deterministic per-chunk work).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlaif.files import atomic_write_text

MANIFEST = "manifest.json"


def hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def hash_path(path: str | Path) -> str:
    """Content hash of a file, or of every file under a directory (names + contents)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_file():
        files = [path]
        root = path.parent
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        root = path
    else:
        return "missing"
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def fingerprint_dir(path: str | Path) -> str:
    """A cheap identity for a large model directory: file names, sizes and modification times."""
    path = Path(path)
    if not path.exists():
        return "missing"
    entries = []
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        entries.append([str(f.relative_to(path)), st.st_size, int(st.st_mtime_ns)])
    return hash_json(entries)


def read_manifest(stage_dir: Path) -> dict | None:
    path = stage_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def manifest_matches(stage_dir: Path, config_hash: str, input_hashes: dict[str, str]) -> bool:
    m = read_manifest(stage_dir)
    return bool(m) and m.get("config_hash") == config_hash and m.get("input_hashes") == input_hashes


def write_manifest(stage_dir: Path, manifest: dict) -> None:
    atomic_write_text(
        stage_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    )


def claim_stage_dir(stage_dir: Path, config_hash: str, input_hashes: dict[str, str]) -> None:
    """Prepare a stage directory for (re)running: partial work is kept only if it was made from the
    same config and inputs; otherwise (or after a finished stage whose inputs changed) it is wiped,
    so stale chunks never leak into a new result."""
    key = {"config_hash": config_hash, "input_hashes": input_hashes}
    key_file = stage_dir / ".inputs.json"
    if stage_dir.exists():
        try:
            same = json.loads(key_file.read_text()) == key
        except (OSError, json.JSONDecodeError):
            same = False
        if not same or (stage_dir / MANIFEST).exists():
            shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_file, json.dumps(key, sort_keys=True))


def run_chunks(
    items: Sequence[Any],
    chunk_size: int,
    chunk_dir: Path,
    work: Callable[[int, list[Any]], dict],
    progress: Callable[[int, int, bool], None] | None = None,
) -> list[dict]:
    """Run ``work(chunk_index, chunk_items) -> JSON-able dict`` for every chunk not yet on disk.

    Returns every chunk's result in order (finished ones are read back from disk).
    ``progress(done, total, cached)`` is called after each chunk; ``cached``: read back, not run now.
    """
    chunk_dir.mkdir(parents=True, exist_ok=True)
    n_chunks = (len(items) + chunk_size - 1) // chunk_size
    results = []
    for c in range(n_chunks):
        path = chunk_dir / f"chunk_{c:05d}.json"
        cached = path.is_file()
        if cached:
            results.append(json.loads(path.read_text()))
        else:
            result = work(c, list(items[c * chunk_size : (c + 1) * chunk_size]))
            atomic_write_text(path, json.dumps(result, default=str))
            results.append(result)
        if progress:
            progress(c + 1, n_chunks, cached)
    return results


class StageTimer:
    def __init__(self) -> None:
        self.start = time.time()

    def elapsed(self) -> float:
        return round(time.time() - self.start, 3)
