"""Two real ``vllm serve`` replicas of the tiny model behind one OpenAIEngine; one is killed while a
request is outstanding on it (:mod:`mid_request` says how that is arranged without timing).

Slow (two servers start in ~1 min on two cores); run with ``-m slow``.
"""

from __future__ import annotations

import signal
import threading

import pytest
from mid_request import freeze_with_request_outstanding, group_members

from rlaif.engines.base import Sampling
from rlaif.engines.openai import OpenAIEngine
from rlaif.engines.serve import free_port, launch_replica, serve_command, wait_healthy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_replicas(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("replicas")
    options = {
        "served_name": "tiny",
        "max_model_len": 512,
        "kv_cache_bytes": 128 << 20,
        "extra": ["--enforce-eager"],
    }
    started = []
    try:
        for i in range(2):  # both start at once; each waits for its own health below
            port = free_port()
            cmd = serve_command(tiny_model_dir, port, **options)
            started.append(launch_replica(cmd, "127.0.0.1", port, folder / f"replica{i}.log"))
        yield [wait_healthy(replica) for replica in started]
    finally:
        for replica in started:
            replica.kill(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            replica.stop()


def _ids(out):
    return [comps[0].token_ids for comps in out]


def test_replica_killed_with_a_request_outstanding_changes_no_record(two_replicas, capsys):
    a, b = two_replicas
    prompts = [[{"role": "user", "content": f"Write about the number {i}."}] for i in range(64)]
    settings = [Sampling(max_tokens=24, temperature=1.0, seed=500 + i) for i in range(64)]
    single = OpenAIEngine(a.url, concurrency=4).generate(prompts, settings)

    engine = OpenAIEngine([a.url, b.url], concurrency=4, health_interval_s=0.2)
    a_state, b_state = engine.pool.replicas
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(out=engine.generate(prompts, settings)))
    worker.start()
    stuck = freeze_with_request_outstanding(
        b_state, a_state, lambda: group_members(b.proc.pid), worker.is_alive
    )
    b.kill()  # SIGKILL the frozen server and its engine core: its outstanding requests fail
    worker.join(timeout=300)
    assert not worker.is_alive()
    out = box["out"]

    # the outstanding requests were recovered on the other replica: retried after the failure, or
    # already re-sent there as straggler hedges while the server was frozen
    assert stuck >= 1 and engine.stats["retries"] + engine.stats["hedges"] >= 1, engine.stats
    # every prompt answered exactly once, in order, and the records equal the one-replica run's
    assert len(out) == 64 and all(len(comps) == 1 for comps in out)
    assert [c[0].text for c in out] == [c[0].text for c in single]
    assert _ids(out) == _ids(single)
    counts = engine.served_counts()
    assert counts[b.url] >= 2 and sum(counts.values()) == 64

    # one more small batch: the dead replica is dropped by now (a failure probed it in the batch
    # above, or a request of this batch does) with one warning line, and nothing is lost
    again = engine.generate(prompts[:6], settings[:6])
    assert _ids(again) == _ids(single[:6])
    assert engine.urls == [a.url]
    dropped = [line for line in capsys.readouterr().err.splitlines() if "dropped replica" in line]
    assert len(dropped) == 1 and b.url in dropped[0], dropped
