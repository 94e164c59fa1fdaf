"""The policy as plain weights for serving: a round's LoRA adapter merged into a copy of its base
(``engine.adapter_serving: merged``).

Why: on CPU, vLLM generated 3.5x slower through a LoRA adapter than on the adapter merged into its base
(``benchmarks/adapter_serving.py``, Qwen2.5-Coder-0.5B, 224 problems: 701 s vs 198 s, the merge's 8 s
included), and a LoRA-enabled engine cannot score text; a merge costs ~1.8 GB for that model.
Training is not affected: the next round still continues from the adapter.

Guarantees: the merged model is written to ``<run>/served_policy/<key>`` through a temporary
directory renamed into place, so a directory under that name is complete; ``<key>`` is derived from
the base and the adapter's content, so a resumed run reuses the copy it made and an adapter rewritten
in place gets a new one (the adapter's content is read again when one of its files' name, size or
modification time changed, not on every call); the merge keeps the base's dtype (a bf16 base is served
as bf16, as it would be with LoRA); once a new copy is in place, every other copy under
``served_policy/`` (the run's own folder, never the user's files) is deleted, so a run holds one full
model copy on disk.
Non-guarantees: an adapter file rewritten in place with the same size and the same modification time
(a file system whose clock ticks coarser than the rewrites) keeps its key until the process ends; the
bf16 merge rounds base + delta once, so its log-probabilities differ from the adapter served on the
base by bf16 rounding; a base vLLM can serve but transformers cannot load (a GGUF file, custom code)
cannot be merged.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rlaif.pipeline.manifest import fingerprint_dir, hash_json, hash_path

SERVED_DIR = "served_policy"
MARKER = "rlaif_merged.json"
# small files of the base that a merge should carry over when transformers does not write them itself
_CARRIED = (".json", ".jinja", ".txt", ".model", ".tiktoken")


_ADAPTER_HASHES: dict[tuple, str] = {}  # (adapter path, its files' names, sizes, mtimes) -> content hash
_ADAPTER_HASHES_KEPT = 16  # a run serves one adapter a round; a few rounds' worth is plenty


def _adapter_files(adapter: Path) -> tuple | None:
    """The files :func:`hash_path` reads for ``adapter`` (hidden files left out, as it does) with their
    sizes and modification times; None when it is neither a file nor a folder."""
    if adapter.is_file():
        files = [adapter]
    elif adapter.is_dir():
        files = sorted(f for f in adapter.rglob("*") if f.is_file() and not f.name.startswith("."))
    else:
        return None
    return tuple((str(f), st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()])


def adapter_hash(adapter: Path) -> str:
    """The adapter's content hash (:func:`hash_path`), read again only when one of its files' names,
    sizes or modification times changed since the last call (why: ``served_path`` is asked on every
    ``policy_engine()`` call, several times a stage, and an adapter is tens of MB)."""
    listing = _adapter_files(Path(adapter))
    if listing is None:
        return hash_path(adapter)  # "missing": nothing to remember
    key = (str(Path(adapter).resolve()), listing)
    if key not in _ADAPTER_HASHES:
        while len(_ADAPTER_HASHES) >= _ADAPTER_HASHES_KEPT:
            del _ADAPTER_HASHES[next(iter(_ADAPTER_HASHES))]  # the oldest first
        _ADAPTER_HASHES[key] = hash_path(adapter)
    return _ADAPTER_HASHES[key]


def merged_key(base: Path, adapter: Path) -> str:
    """Which merged copy serves ``base + adapter``: the base by fingerprint (hashing GBs of weights
    would cost minutes), the adapter by content (small, and rewritten in place between attempts; its
    hash is remembered while its files' sizes and times stay the same, :func:`adapter_hash`)."""
    return "merged-" + hash_json([str(base), fingerprint_dir(base), str(adapter), adapter_hash(adapter)])[:12]


def served_model(
    run_dir: Path,
    base: Path,
    adapter: Path,
    say: Callable[[str], None] = lambda _: None,
    log_event: Callable[..., None] = lambda *_, **__: None,
) -> Path:
    """The directory of ``adapter`` merged into ``base`` under ``run_dir``, merged now unless a
    complete copy is already there; older copies are deleted once this one is in place."""
    root = run_dir / SERVED_DIR
    target = root / merged_key(base, adapter)
    if (target / MARKER).is_file():
        log_event("policy_merge_reused", adapter=str(adapter), model=str(target))
        say(f"  serving {adapter} merged at {target} (merged earlier)")
    else:
        seconds = _merge_into(root, target, base, adapter)
        log_event("policy_merged", adapter=str(adapter), model=str(target), seconds=round(seconds, 1))
        say(f"  merged {adapter} into {target} in {seconds:.0f} s")
    _delete_others(root, keep=target)
    return target


def _merge_into(root: Path, target: Path, base: Path, adapter: Path) -> float:
    """Merge into a temporary sibling of ``target`` and rename it into place; the seconds it took."""
    from rlaif.train.configs import PolicySpec
    from rlaif.train.models import merge_policy

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)  # a merge killed half-way
    began = time.monotonic()
    merge_policy(PolicySpec(path=base, adapter=adapter), tmp, dtype="auto")  # the base's own dtype
    _carry_small_files(base, tmp)
    seconds = time.monotonic() - began
    info = {"base": str(base), "adapter": str(adapter), "seconds": round(seconds, 1)}
    (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)  # a copy without its marker is not ours to trust
    tmp.rename(target)
    return seconds


def _carry_small_files(base: Path, out: Path) -> None:
    """Configuration files of the base that the merge did not write (e.g. ``generation_config.json``
    of a hand-made model dir, which vLLM reads for its default sampling settings); weight files and
    weight indexes are never copied."""
    for f in base.iterdir():
        if not f.is_file() or f.suffix not in _CARRIED or f.name.endswith(".index.json"):
            continue
        if not (out / f.name).exists():
            shutil.copy2(f, out / f.name)


def _delete_others(root: Path, keep: Path) -> None:
    """Every other merged copy the run made (``merged-*`` and leftover ``.tmp-*`` folders)."""
    for entry in root.iterdir():
        if entry != keep and entry.is_dir() and entry.name.startswith(("merged-", ".tmp-")):
            shutil.rmtree(entry, ignore_errors=True)
