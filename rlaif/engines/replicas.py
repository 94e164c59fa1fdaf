"""Replicas of one served model: which are alive, how loaded, and the ``/health`` probe.

Why routing lives in the client and not in ``vllm-router`` (the vLLM project's Rust load balancer on
PyPI): the engine already owns what routing must get right for us - one result per prompt in input
order, the per-request seed, retries - and only the client knows where a batch ends, which is what
straggler hedging needs (:mod:`rlaif.engines.router`). A router process would be one more server to
start, health-check and kill per run, one more hop per request, and would still need this client-side
retry logic for the case where the router itself fails. Least-outstanding-requests routing is a few
lines here.

Guarantees:
- a replica is picked only while it is alive, not under a health probe, and below its ``capacity``
  of requests in flight; among those, the one with the fewest outstanding requests (ties: the one
  that served fewest, so an idle pool spreads a small batch);
- a replica is dropped only after its health probe fails ``health_tries`` times in a row; dropping
  prints one warning line to stderr and is final for the engine's lifetime;
- :meth:`ReplicaSet.require_alive` raises :class:`EngineError` naming every replica and why it was
  dropped when none is left.

Non-guarantees: health is ``GET <root>/health`` (vLLM's endpoint); a server without it (HTTP 404)
is probed with ``GET <base>/models`` instead. A dropped replica that comes back is not re-admitted.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from rlaif.errors import EngineError


@dataclass(eq=False)  # identity: a replica is a dict key while it is probed
class Replica:
    """One OpenAI-compatible base URL (``http://host:port/v1``) and its live counters."""

    url: str
    outstanding: int = 0
    served: int = 0
    alive: bool = True
    probing: bool = False
    reason: str = ""

    @property
    def root(self) -> str:
        """The server root, where vLLM serves ``/health`` (the base URL without its ``/v1``)."""
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url


def _health_ok(status: int) -> bool | None:
    """True/False for a definite answer; None when the server has no /health (try /models)."""
    if status == 404:
        return None
    return status == 200


def probe_once_sync(replica: Replica, headers: dict[str, str], timeout_s: float) -> str | None:
    """One blocking health probe; the error text, or None when healthy."""
    import httpx

    try:
        ok = _health_ok(httpx.get(replica.root + "/health", headers=headers, timeout=timeout_s).status_code)
        if ok is None:
            ok = httpx.get(replica.url + "/models", headers=headers, timeout=timeout_s).status_code == 200
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if ok else "health check answered an error status"


async def probe_once(client, replica: Replica, headers: dict[str, str], timeout_s: float) -> str | None:
    """One health probe on the engine's async client; the error text, or None when healthy."""
    import httpx

    try:
        resp = await client.get(replica.root + "/health", headers=headers, timeout=timeout_s)
        ok = _health_ok(resp.status_code)
        if ok is None:
            resp = await client.get(replica.url + "/models", headers=headers, timeout=timeout_s)
            ok = resp.status_code == 200
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if ok else f"health check answered HTTP {resp.status_code}"


class ReplicaSet:
    """The replicas behind one engine; ``capacity`` is the in-flight limit per replica."""

    def __init__(self, urls: list[str], capacity: int, health_tries: int = 3, health_interval_s: float = 1.0):
        if not urls:
            raise EngineError("an OpenAI engine needs at least one server URL")
        if len(set(urls)) != len(urls):
            raise EngineError(f"server URLs are listed twice: {', '.join(urls)}")
        self.replicas = [Replica(u.rstrip("/")) for u in urls]
        self.capacity = capacity
        self.health_tries = health_tries
        self.health_interval_s = health_interval_s

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def pick(self, avoid: Replica | None = None) -> Replica | None:
        """The least-loaded usable replica with a free slot, preferring one other than ``avoid``."""
        free = [r for r in self.replicas if r.alive and not r.probing and r.outstanding < self.capacity]
        others = [r for r in free if r is not avoid]
        pool = others or free
        return min(pool, key=lambda r: (r.outstanding, r.served)) if pool else None

    def drop(self, replica: Replica, reason: str) -> None:
        if not replica.alive:
            return
        replica.alive, replica.reason = False, reason
        left = len(self.alive())
        print(
            f"warning: dropped replica {replica.url} ({reason}); {left} of {len(self.replicas)} left",
            file=sys.stderr,
            flush=True,
        )

    def require_alive(self) -> None:
        if not self.alive():
            why = "; ".join(f"{r.url}: {r.reason}" for r in self.replicas)
            raise EngineError(f"all {len(self.replicas)} OpenAI-compatible servers are down ({why})")

    def check_all_sync(self, headers: dict[str, str], timeout_s: float) -> None:
        """The before-use check: drop every replica that does not answer its health probe."""
        for replica in self.replicas:
            error = probe_once_sync(replica, headers, timeout_s)
            if error is not None:
                self.drop(replica, f"not healthy at start: {error}")
        self.require_alive()

    async def probe(self, client, replica: Replica, headers: dict[str, str], timeout_s: float) -> None:
        """After a failed request: keep the replica out of rotation while probing; drop it if it
        stays down for ``health_tries`` probes, otherwise put it back."""
        replica.probing = True
        try:
            error = None
            for attempt in range(self.health_tries):
                if attempt:
                    await asyncio.sleep(self.health_interval_s)
                error = await probe_once(client, replica, headers, timeout_s)
                if error is None:
                    return
            self.drop(replica, f"health check failed {self.health_tries} times: {error}")
        finally:
            replica.probing = False
