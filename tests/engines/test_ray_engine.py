"""engine.kind=ray: two vLLM replicas of the tiny model as actors of a local Ray cluster; one actor is
killed while a request is outstanding on its server (:mod:`mid_request` says how that is arranged
without timing). Slow (two servers start in over a minute on two cores); run with ``-m slow``."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from mid_request import freeze_with_request_outstanding, group_members, server_pids, signal_pids

from rlaif.engines.base import Sampling
from rlaif.engines.openai import OpenAIEngine

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rlaif[ray]'")
pytestmark = pytest.mark.slow


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _ids(out):
    return [comps[0].token_ids for comps in out]


def test_two_ray_replicas_survive_a_killed_actor(tiny_model_dir, tmp_path, capsys):
    from rlaif.engines.ray_engine import RayEngine

    ray.init(num_cpus=2, object_store_memory=100 << 20, include_dashboard=False, log_to_driver=False)
    engine = group = None
    try:
        engine = RayEngine(
            tiny_model_dir,
            replicas=2,
            replica_cpus=1,
            serve_options={"max_model_len": 512, "kv_cache_bytes": 128 << 20, "extra": ["--enforce-eager"]},
            log_dir=tmp_path / "logs",
            concurrency=4,
            health_interval_s=0.2,
        )
        assert len(engine.urls) == 2 and engine.model_name == "policy"
        prompts = [[{"role": "user", "content": f"Count to {i}."}] for i in range(64)]
        settings = [Sampling(max_tokens=32, seed=i) for i in range(64)]
        single = OpenAIEngine(engine.urls[0], model="policy", concurrency=4).generate(prompts, settings)

        a_state, b_state = engine.pool.replicas
        group = ray.get(engine.actors[1].process_group.remote())
        box: dict = {}
        worker = threading.Thread(target=lambda: box.update(out=engine.generate(prompts, settings)))
        worker.start()
        stuck = freeze_with_request_outstanding(b_state, a_state, lambda: server_pids(group), worker.is_alive)
        ray.kill(engine.actors[1])  # the actor's death takes its (frozen) vllm serve down with it
        # nothing of the killed replica outlives its actor: server and engine core are gone
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.05)
        assert not _group_alive(group), group_members(group)
        worker.join(timeout=300)
        assert not worker.is_alive()
        out = box["out"]
        assert stuck >= 1 and engine.stats["retries"] + engine.stats["hedges"] >= 1, engine.stats
        assert len(out) == 64 and _ids(out) == _ids(single)  # the one-replica run's records

        # one more small batch: the dead replica is dropped by now, with one warning line
        assert _ids(engine.generate(prompts[:6], settings[:6])) == _ids(single[:6])
        assert engine.urls == [a_state.url]
        dropped = [line for line in capsys.readouterr().err.splitlines() if "dropped replica" in line]
        assert len(dropped) == 1 and b_state.url in dropped[0], dropped
    finally:
        if group is not None:
            signal_pids(group_members(group), signal.SIGCONT)  # a failed test may leave it frozen
        if engine is not None:
            engine.close()
        ray.shutdown()
