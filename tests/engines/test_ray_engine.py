"""engine.kind=ray: two vLLM replicas of the tiny model as actors of a local Ray cluster, one actor
killed mid-batch. Slow (two servers start in over a minute on two cores); run with ``-m slow``."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rlaif.engines.base import Sampling

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rlaif[ray]'")
pytestmark = pytest.mark.slow


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_ray_replicas_survive_a_killed_actor(tiny_model_dir, tmp_path, capsys):
    from rlaif.engines.ray_engine import RayEngine

    ray.init(num_cpus=2, object_store_memory=100 << 20, include_dashboard=False, log_to_driver=False)
    engine = None
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
        prompts = [[{"role": "user", "content": f"Count to {i}."}] for i in range(96)]
        settings = [Sampling(max_tokens=32, seed=i) for i in range(96)]
        reference = engine.generate(prompts, settings)
        assert all(n > 0 for n in engine.served_counts().values())  # both replicas served

        box: dict = {}
        worker = threading.Thread(target=lambda: box.update(out=engine.generate(prompts, settings)))
        worker.start()
        while sum(engine.served_counts().values()) < 96 + 6 and worker.is_alive():
            time.sleep(0.005)
        group = ray.get(engine.actors[1].process_group.remote())
        ray.kill(engine.actors[1])  # the actor's death takes its vllm serve down with it
        # nothing of the killed replica outlives its actor: server and engine core are gone
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.05)
        assert not _group_alive(group)
        server_died_mid_batch = worker.is_alive()
        worker.join(timeout=300)
        out = box["out"]
        assert [c[0].token_ids for c in out] == [c[0].token_ids for c in reference]
        if server_died_mid_batch:  # the router saw it die: dropped with one warning
            assert len(engine.urls) == 1
            assert sum("dropped replica" in line for line in capsys.readouterr().err.splitlines()) == 1
        else:  # the batch ended first; the next one finds the dead replica
            assert len(engine.generate(prompts[:8], settings[:8])) == 8 and len(engine.urls) == 1
    finally:
        if engine is not None:
            engine.close()
        ray.shutdown()
