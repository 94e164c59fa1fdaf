"""OpenAIEngine over several replicas, against stub servers: routing, dead replicas, stragglers.

The same behaviour against two real ``vllm serve`` processes is in test_openai_replicas_vllm.py.
"""

from __future__ import annotations

import time

import pytest
from stub_server import StubServer

from rlaif.engines.base import Sampling
from rlaif.engines.openai import OpenAIEngine
from rlaif.errors import EngineError

FAST = {"backoff_s": 0.01, "health_interval_s": 0.05, "health_timeout_s": 1.0}


def _prompts(n: int):
    return [[{"role": "user", "content": f"prompt {i}"}] for i in range(n)]


def _settings(n: int):
    return [Sampling(max_tokens=4, seed=1000 + i) for i in range(n)]


def _texts(out):
    return [comps[0].text for comps in out]


@pytest.fixture
def servers():
    made: list[StubServer] = []

    def make(**kwargs) -> StubServer:
        made.append(StubServer(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_least_outstanding_spreads_the_batch_and_keeps_order(servers):
    a, b = servers(latency_s=0.02), servers(latency_s=0.02)
    engine = OpenAIEngine([a.url, b.url], concurrency=3, **FAST)
    assert engine.model_name == "stub"
    out = engine.generate(_prompts(30), _settings(30))
    assert _texts(out) == [f"prompt {i} seed={1000 + i}" for i in range(30)]
    # equal latency: neither replica takes more than two thirds of the batch
    assert 10 <= sum(a.served.values()) <= 20 and sum(a.served.values()) + sum(b.served.values()) == 30
    # a small batch on an idle pool goes to both replicas
    before = engine.served_counts()
    engine.generate(_prompts(2), _settings(2))
    assert {url: n - before[url] for url, n in engine.served_counts().items()} == {a.url: 1, b.url: 1}


def test_replica_killed_mid_batch_loses_and_duplicates_nothing(servers, capsys):
    a, b = servers(latency_s=0.01), servers(latency_s=0.01, kill_after=5)
    engine = OpenAIEngine([a.url, b.url], concurrency=4, **FAST)
    out = engine.generate(_prompts(40), _settings(40))
    # same seeds wherever a prompt was served: the records equal a one-replica run's
    single = OpenAIEngine([a.url], concurrency=4, **FAST).generate(_prompts(40), _settings(40))
    assert _texts(out) == _texts(single) == [f"prompt {i} seed={1000 + i}" for i in range(40)]
    assert engine.urls == [a.url]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "dropped replica" in line]
    assert len(warnings) == 1 and b.url in warnings[0] and "1 of 2 left" in warnings[0]
    assert engine.stats["retries"] >= 1
    # the engine took one answer per prompt; b died after about 5 (answers already under way finish)
    assert 5 <= engine.served_counts()[b.url] <= sum(b.served.values()) < 40
    assert sum(engine.served_counts().values()) == 40


def test_fails_clearly_only_when_no_replica_is_left(servers):
    a, b = servers(latency_s=0.01, kill_after=3), servers(latency_s=0.01, kill_after=3)
    engine = OpenAIEngine([a.url, b.url], concurrency=2, **FAST)
    with pytest.raises(EngineError, match="all 2 OpenAI-compatible servers are down"):
        engine.generate(_prompts(20), _settings(20))


def test_dead_replica_is_dropped_before_use(servers, capsys):
    a, dead = servers(), servers()
    dead.kill()
    engine = OpenAIEngine([dead.url, a.url], **FAST)
    assert engine.urls == [a.url]
    assert "not healthy at start" in capsys.readouterr().err
    assert _texts(engine.generate(_prompts(3), _settings(3)))[2] == "prompt 2 seed=1002"
    dead2 = servers()
    dead2.kill()
    with pytest.raises(EngineError, match="servers are down"):
        OpenAIEngine([dead.url, dead2.url], **FAST)


def test_client_errors_are_not_retried_elsewhere(servers):
    a, b = servers(status=400), servers(status=400)
    engine = OpenAIEngine([a.url, b.url], **FAST)
    with pytest.raises(EngineError, match="rejected prompt 0 with HTTP 400"):
        engine.generate(_prompts(1), _settings(1))
    assert engine.stats["requests"] == 1


def test_a_slow_replica_does_not_hold_up_the_batch(servers):
    fast, slow = servers(latency_s=0.02), servers(latency_s=3.0)
    prompts, settings = _prompts(24), _settings(24)
    hedged = OpenAIEngine([fast.url, slow.url], concurrency=4, **FAST)
    start = time.monotonic()
    out = hedged.generate(prompts, settings)
    took = time.monotonic() - start
    assert _texts(out) == [f"prompt {i} seed={1000 + i}" for i in range(24)]
    # the slow replica's first requests were hedged on the fast one instead of waited for (3 s)
    assert took < 2.0 and hedged.stats["hedges"] >= 1, (took, hedged.stats)
    assert hedged.served_counts()[fast.url] == 24
    unhedged = OpenAIEngine([fast.url, slow.url], concurrency=4, hedge_factor=None, **FAST)
    start = time.monotonic()
    assert _texts(unhedged.generate(prompts, settings)) == _texts(out)
    assert time.monotonic() - start >= 3.0
