"""Route one batch of requests over a :class:`~rlaif.engines.replicas.ReplicaSet`.

Why a dispatcher loop and not one task per prompt behind a semaphore: the loop sees the whole batch,
so it can send each request to the least-loaded replica at the moment a slot frees up, move a failed
request to another replica at once, and - when nothing is left to start - hedge the stragglers.

Guarantees:
- exactly one result per index, in input order; a request is retried (on another replica when one is
  alive, otherwise after exponential backoff with jitter) when it times out, is refused or gets a 5xx,
  up to ``max_retries`` failures per index; the caller builds the request body once per index, so a
  retry or a hedge sends the same body (same seed) and the result does not depend on the replica;
- a failed request puts its replica under a health probe (no new requests meanwhile); a replica that
  stays down is dropped (:meth:`ReplicaSet.probe`; a probe under way ends before the batch returns),
  and the batch fails with :class:`EngineError` only when no replica is left or an index exhausts its
  retries;
- stragglers: once every index has been started, a request that has run longer than ``hedge_factor``
  times the median latency of this batch's finished requests is sent once more to an idle replica;
  the first answer wins and the other request is cancelled (the connection is closed, which aborts
  the request in vLLM). A batch therefore never waits on one slow replica while another is idle.

Non-guarantees: a server may see a request twice (a retry after a timeout it had in fact served, or a
hedge); seeds make the two answers the same only if the replicas run the same model with the same
numerics.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import statistics
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rlaif.engines.replicas import Replica, ReplicaSet
from rlaif.errors import EngineError


class Retryable(Exception):
    """A failure worth trying again elsewhere (timeout, refused connection, 5xx, malformed answer)."""


@dataclass
class _Attempt:
    index: int
    replica: Replica
    started: float


@dataclass
class _Batch:
    """The loop's state for one batch."""

    count: int
    results: list[Any] = field(init=False)
    failures: list[int] = field(init=False)
    errors: list[str] = field(init=False)
    ready: deque[int] = field(init=False)
    delayed: list[tuple[float, int]] = field(default_factory=list)
    running: dict[asyncio.Task, _Attempt] = field(default_factory=dict)
    by_index: dict[int, set[asyncio.Task]] = field(default_factory=lambda: defaultdict(set))
    avoid: dict[int, Replica] = field(default_factory=dict)
    hedged: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    done: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * self.count
        self.failures = [0] * self.count
        self.errors = [""] * self.count
        self.ready = deque(range(self.count))


class Router:
    """``attempt(replica, index)`` sends request ``index`` to ``replica`` and returns its result,
    raises :class:`Retryable`, or raises :class:`EngineError` (a request the server rejects as wrong
    is not retried). ``probe(replica)`` is a coroutine that health-checks and maybe drops it."""

    def __init__(
        self,
        pool: ReplicaSet,
        attempt: Callable[[Replica, int], Awaitable[Any]],
        probe: Callable[[Replica], Awaitable[None]],
        *,
        max_retries: int,
        backoff_s: float,
        max_backoff_s: float,
        hedge_factor: float | None,
        stats: dict[str, Any],
    ):
        self.pool, self.attempt, self.probe = pool, attempt, probe
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.hedge_factor = hedge_factor
        self.stats = stats
        self.probes: dict[Replica, asyncio.Task] = {}

    async def run(self, count: int) -> list[Any]:
        b = _Batch(count)
        loop = asyncio.get_running_loop()
        try:
            while b.done < count:
                self.pool.require_alive()
                now = loop.time()
                while b.delayed and b.delayed[0][0] <= now:
                    b.ready.append(heapq.heappop(b.delayed)[1])
                self._launch(b, now)
                wake = self._hedge(b, now) if not b.ready and not b.delayed else None
                if b.delayed:
                    wake = min(wake or float("inf"), b.delayed[0][0] - now)
                waits = set(b.running) | {t for t in self.probes.values() if not t.done()}
                if not waits:
                    await asyncio.sleep(max(wake or 0.01, 0.001))
                    continue
                done, _ = await asyncio.wait(
                    waits,
                    timeout=None if wake is None else max(wake, 0.001),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    if task in b.running:
                        self._finished(b, task, loop.time())
            # a probe started by a failure ends before the batch returns, so a replica that stays down
            # is dropped now (not left half-probed for the next batch to fail on again)
            await asyncio.gather(*(t for t in self.probes.values() if not t.done()), return_exceptions=True)
        finally:
            pending = list(b.running) + list(self.probes.values())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for attempt in b.running.values():
                attempt.replica.outstanding -= 1
            self.probes.clear()
        return b.results

    def _start(self, b: _Batch, index: int, replica: Replica, now: float) -> None:
        replica.outstanding += 1
        self.stats["requests"] += 1
        task = asyncio.ensure_future(self.attempt(replica, index))
        b.running[task] = _Attempt(index, replica, now)
        b.by_index[index].add(task)

    def _launch(self, b: _Batch, now: float) -> None:
        while b.ready:
            index = b.ready[0]
            replica = self.pool.pick(avoid=b.avoid.get(index))
            if replica is None:
                return
            b.ready.popleft()
            self._start(b, index, replica, now)

    def _hedge(self, b: _Batch, now: float) -> float | None:
        """Duplicate the oldest stragglers onto idle replicas; the seconds until the next one is due."""
        if self.hedge_factor is None or not b.latencies:
            return None
        threshold = self.hedge_factor * statistics.median(b.latencies)
        singles = sorted(
            (a for t, a in b.running.items() if a.index not in b.hedged and len(b.by_index[a.index]) == 1),
            key=lambda a: a.started,
        )
        for a in singles:
            due = a.started + threshold - now
            if due > 0:
                return due
            replica = self.pool.pick(avoid=a.replica)
            if replica is None or replica is a.replica:
                return None
            b.hedged.add(a.index)
            self.stats["hedges"] += 1
            self._start(b, a.index, replica, now)
        return None

    def _finished(self, b: _Batch, task: asyncio.Task, now: float) -> None:
        a = b.running.pop(task)
        b.by_index[a.index].discard(task)
        a.replica.outstanding -= 1
        if task.cancelled() or b.results[a.index] is not None:
            return
        exc = task.exception()
        if exc is None:
            b.results[a.index] = task.result()
            b.done += 1
            a.replica.served += 1
            b.latencies.append(now - a.started)
            for other in b.by_index[a.index]:
                other.cancel()
            return
        if not isinstance(exc, Retryable):
            raise exc
        self._failed(b, a, str(exc), now)

    def _failed(self, b: _Batch, a: _Attempt, error: str, now: float) -> None:
        self.stats["retries"] += 1
        replica = a.replica
        probe = self.probes.get(replica)
        if replica.alive and (probe is None or probe.done()):
            self.probes[replica] = asyncio.ensure_future(self.probe(replica))
        if b.by_index[a.index]:  # a hedge of this index is still running
            return
        b.failures[a.index] += 1
        b.errors[a.index] = f"{error} (on {replica.url})"
        if b.failures[a.index] > self.max_retries:
            raise EngineError(
                f"prompt {a.index} failed after {b.failures[a.index]} attempts: {b.errors[a.index]}"
            )
        b.avoid[a.index] = replica
        if any(r is not replica for r in self.pool.alive()):
            b.ready.appendleft(a.index)
            return
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (b.failures[a.index] - 1))
        heapq.heappush(b.delayed, (now + delay * (0.5 + random.random() / 2), a.index))
