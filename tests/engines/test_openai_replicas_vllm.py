"""Two real ``vllm serve`` replicas of the tiny model behind one OpenAIEngine; one is killed mid-chunk.

Slow (two servers start in ~1 min on two cores); run with ``-m slow``.
"""

from __future__ import annotations

import threading
import time

import pytest

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
            replica.stop()


def test_replica_killed_mid_chunk_changes_no_record(two_replicas, capsys):
    a, b = two_replicas
    prompts = [[{"role": "user", "content": f"Write about the number {i}."}] for i in range(64)]
    settings = [Sampling(max_tokens=24, temperature=1.0, seed=500 + i) for i in range(64)]
    single = OpenAIEngine(a.url, concurrency=4).generate(prompts, settings)

    engine = OpenAIEngine([a.url, b.url], concurrency=4, health_interval_s=0.2)
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(out=engine.generate(prompts, settings)))
    worker.start()
    b_state = engine.pool.replicas[1]
    while b_state.served < 3 and worker.is_alive():
        time.sleep(0.005)
    killed_mid_chunk = worker.is_alive()
    b.kill()  # SIGKILL the server and its engine core, mid-chunk
    worker.join(timeout=300)
    out = box["out"]
    err = capsys.readouterr().err

    assert killed_mid_chunk
    # at least one request failed on the dead replica and was served by the other one
    assert engine.stats["retries"] >= 1, (engine.stats, engine.served_counts(), err[-2000:])
    # every prompt answered exactly once, in order, and the records equal the one-replica run's
    assert len(out) == 64 and all(len(comps) == 1 for comps in out)
    assert [c[0].text for c in out] == [c[0].text for c in single]
    assert [c[0].token_ids for c in out] == [c[0].token_ids for c in single]
    counts = engine.served_counts()
    assert counts[b.url] >= 3 and sum(counts.values()) == 64
    assert engine.urls == [a.url]
    dropped = [line for line in err.splitlines() if "dropped replica" in line]
    assert len(dropped) == 1 and b.url in dropped[0]
