"""The merged copy's key (``served_path`` -> ``merged_key``) reads the adapter's files once while they
stay the same (names, sizes, modification times), not on every ``policy_engine()`` call; an adapter
rewritten in place still gets a new key, and its old content its old key back.

A spy wraps the real :func:`hash_path` to count the reads; the keys are the real ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlaif.pipeline import served_model
from rlaif.pipeline.compile import compile_run
from rlaif.pipeline.context import Policy, RunContext
from rlaif.pipeline.served_model import SERVED_DIR, merged_key


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """The paths :func:`hash_path` was asked to read, from an empty cache."""
    seen: list[Path] = []
    real = served_model.hash_path

    def spy(path):
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(served_model, "hash_path", spy)
    monkeypatch.setattr(served_model, "_ADAPTER_HASHES", {})
    return seen


def adapter_dir(root: Path, weights: bytes = b"\x01" * 64) -> Path:
    adapter = root / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(weights)
    return adapter


def rewrite(path: Path, data: bytes, mtime_ns: int) -> None:
    """Write ``data`` in place and set the file's modification time (a later save of the adapter)."""
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_served_path_reads_the_adapter_once_per_version(run_config, tmp_path, reads):
    cfg = run_config(engine={"adapter_serving": "merged"})
    adapter = adapter_dir(tmp_path)
    ctx = RunContext(
        run=compile_run(cfg).run, run_dir=tmp_path / "run", policy=Policy(cfg.policy.path, adapter)
    )
    first = ctx.served_path()
    assert first.parent == tmp_path / "run" / SERVED_DIR and first.name.startswith("merged-")
    assert [ctx.served_path() for _ in range(5)] == [first] * 5
    assert reads == [adapter]  # read once, not six times

    weights = adapter / "adapter_model.safetensors"
    old_mtime = weights.stat().st_mtime_ns
    rewrite(weights, b"\x02" * 64, old_mtime + 1_000_000_000)  # same size, new content, later save
    second = ctx.served_path()
    assert second != first and ctx.served_path() == second and reads == [adapter, adapter]
    rewrite(weights, b"\x01" * 64, old_mtime + 2_000_000_000)  # the old content again: the old key
    assert ctx.served_path() == first and len(reads) == 3
    (adapter / "README.md").write_text("notes")  # a new file is read too (hash_path reads it)
    assert ctx.served_path() not in (first, second) and len(reads) == 4
    (adapter / ".hidden").write_text("x")  # hash_path leaves hidden files out: no new read, same key
    third = ctx.served_path()
    assert ctx.served_path() == third and len(reads) == 4


def test_each_adapter_path_is_read_once_and_a_missing_one_is_not_remembered(tmp_path, reads):
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    one, two = adapter_dir(tmp_path / "one"), adapter_dir(tmp_path / "two")
    assert merged_key(base, one) == merged_key(base, one) and reads == [one]
    assert merged_key(base, two) != merged_key(base, one)  # another path is another copy
    assert reads == [one, two]
    missing = tmp_path / "gone"
    assert merged_key(base, missing) == merged_key(base, missing)  # "missing": nothing cached
    assert reads == [one, two, missing, missing] and all(
        k[0] != str(missing.resolve()) for k in served_model._ADAPTER_HASHES
    )


def test_the_cache_keeps_a_bounded_number_of_adapters(tmp_path, reads):
    base = tmp_path / "base"
    base.mkdir()
    adapters = [adapter_dir(tmp_path / f"a{i}") for i in range(served_model._ADAPTER_HASHES_KEPT + 3)]
    for a in adapters:
        merged_key(base, a)
    assert len(served_model._ADAPTER_HASHES) == served_model._ADAPTER_HASHES_KEPT
    merged_key(base, adapters[-1])  # the newest is kept, the oldest was dropped and is read again
    merged_key(base, adapters[0])
    assert reads.count(adapters[0]) == 2 and reads.count(adapters[-1]) == 1
