"""A sandbox pool shared by the code tests, and the paths of the small test assets."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlaif.sandbox import Limits, SandboxPool

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="session")
def code_pool():
    # generous per-test time: a few MBPP references are slow (task 123 runs ~1 s alone) on a busy machine
    with SandboxPool(workers=2, limits=Limits(timeout_s=20.0, total_timeout_s=60.0)) as pool:
        yield pool


@pytest.fixture
def assets() -> Path:
    return ASSETS


@pytest.fixture(autouse=True)
def _private_check_cache(tmp_path_factory, monkeypatch):
    """``rlaif eval-code`` remembers problem checks in a cache folder: each test gets its own, never
    the user's (so no test sees another's entries)."""
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path_factory.mktemp("rlaif-cache")))
