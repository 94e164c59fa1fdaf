"""One sandbox pool for the sandbox tests (starting workers costs well under a second)."""

from __future__ import annotations

import pytest
from sandbox_testlib import assert_healthy

from rlaif.sandbox import Limits, SandboxPool


@pytest.fixture(scope="session")
def pool():
    with SandboxPool(workers=2, limits=Limits(timeout_s=3.0)) as p:
        yield p


@pytest.fixture
def isolated(pool):
    """For adversarial tests that rely on the uid drop and the namespaces; skips (loudly) where missing.
    After the test, the harness must still work and no sandboxed process may be left."""
    iso = pool.isolation
    missing = [k for k in ("network", "pid_namespace", "filesystem") if not iso.get(k)]
    missing += [] if iso.get("uid_drop") or iso.get("userns") else ["uid_drop or userns"]
    if missing:
        pytest.skip(f"this machine cannot provide: {', '.join(missing)} (needs root or user namespaces)")
    yield pool
    assert_healthy(pool)


@pytest.fixture(autouse=True)
def _private_check_cache(tmp_path_factory, monkeypatch):
    """``rlaif eval-code`` remembers problem checks in a cache folder: each test gets its own, never
    the user's (so no test sees another's entries)."""
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path_factory.mktemp("rlaif-cache")))
