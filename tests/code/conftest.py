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
