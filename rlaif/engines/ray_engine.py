"""vLLM replicas as Ray actors, behind the replica router of :class:`OpenAIEngine`.

Why actors that each run ``vllm serve`` (and not vLLM's in-process engine inside the actor): the
replicas then speak the same OpenAI protocol as any other server, so routing, health checks, retries
with the same seed and straggler hedging are the ones :mod:`rlaif.engines.router` already guarantees,
and a dead actor is simply a server that stopped answering. Ray places the replicas (one placement
group bundle per replica: ``replica_cpus`` CPUs and ``replica_gpus`` GPUs, e.g. a tensor-parallel
set) on whichever nodes of the cluster have room.

Guarantees:
- ``address=None`` starts a local Ray instance (stopped again by :meth:`RayEngine.close`); any other
  address joins that cluster (``"auto"``, ``ray://head:10001``) and leaves it running;
- the engine is returned only once every replica answered ``/health``; a replica that fails to start
  fails the engine with its log's last lines (nothing half-started is left behind);
- each ``vllm serve`` and its engine core are SIGKILLed when their actor's process dies
  (:mod:`rlaif.engines.reaper`), so a killed actor is a dead server: the router drops it with one
  warning and the batch goes on elsewhere;
- :meth:`RayEngine.close` stops every server, kills the actors and removes the placement group;
- replicas without GPUs run ``vllm serve --enforce-eager`` (as :class:`VLLMEngine` on CPU: graph
  compilation costs minutes there and gains nothing).

Non-guarantees: ``ray`` is an optional extra (``pip install rlaif[ray]``) and only this module
imports it; model paths must be readable on every node (a shared file system); LoRA adapters are not
served (``generate(adapter=...)`` raises, as for any OpenAI server): a multi-round pipeline whose
policy gains an adapter needs the in-process engine or servers started with ``--lora-modules``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.engines.openai import OpenAIEngine
from rlaif.errors import EngineError

SERVED_NAME = "policy"


class _Replica:
    """The actor body: one ``vllm serve`` on this node, started in ``__init__``."""

    def __init__(self, model: str, options: dict[str, Any], log_dir: str):
        import ray

        from rlaif.engines import serve

        host = ray.util.get_node_ip_address()
        port = serve.free_port(host)
        log = Path(log_dir) / f"replica-{ray.get_runtime_context().get_actor_id()[:12]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = serve.serve_command(model, port, host=host, **options)
        self.replica = serve.launch_replica(cmd, host, port, log, die_with_parent=True)
        serve.wait_healthy(self.replica)

    def url(self) -> str:
        return self.replica.url

    def process_group(self) -> int:
        """The server tree's process group (for tests that check nothing outlives the actor)."""
        return self.replica.proc.pid

    def stop(self) -> None:
        self.replica.stop()


class RayEngine(OpenAIEngine):
    """``replicas`` vLLM servers of ``model_path`` as Ray actors, used as one OpenAI engine."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        replicas: int,
        address: str | None = None,
        replica_cpus: float = 1.0,
        replica_gpus: float | None = None,
        serve_options: dict[str, Any] | None = None,
        log_dir: str | Path = "ray_replicas",
        start_timeout_s: float = 600.0,
        **engine_kwargs: Any,
    ):
        try:
            import ray
            from ray.util.placement_group import placement_group, remove_placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        except ImportError:
            raise EngineError("engine.kind=ray needs Ray: pip install 'rlaif[ray]'") from None
        self._ray, self._remove_pg = ray, remove_placement_group
        self._own_ray = address is None and not ray.is_initialized()
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        gpus = replica_gpus if replica_gpus is not None else self._default_gpus(serve_options)
        self._pg = placement_group(
            [{"CPU": replica_cpus, "GPU": gpus} if gpus else {"CPU": replica_cpus}] * replicas
        )
        self._actors: list[Any] = []
        try:
            ray.get(self._pg.ready(), timeout=start_timeout_s)
            actor_cls = ray.remote(_Replica)
            options = {"served_name": SERVED_NAME, **(serve_options or {})}
            if not gpus and "--enforce-eager" not in options.get("extra", []):
                options["extra"] = [*options.get("extra", []), "--enforce-eager"]
            for i in range(replicas):
                strategy = PlacementGroupSchedulingStrategy(
                    placement_group=self._pg, placement_group_bundle_index=i
                )
                self._actors.append(
                    actor_cls.options(
                        num_cpus=replica_cpus, num_gpus=gpus, scheduling_strategy=strategy
                    ).remote(str(model_path), options, str(Path(log_dir).resolve()))
                )
            urls = ray.get([a.url.remote() for a in self._actors], timeout=start_timeout_s)
        except Exception as exc:
            self.close()
            if isinstance(exc, EngineError):
                raise
            raise EngineError(f"Ray could not start {replicas} vLLM replicas: {exc}") from None
        super().__init__(urls, model=SERVED_NAME, **engine_kwargs)

    def _default_gpus(self, serve_options: dict[str, Any] | None) -> float:
        """tensor_parallel_size GPUs per replica when the cluster has GPUs, else none."""
        if not self._ray.cluster_resources().get("GPU"):
            return 0
        return float((serve_options or {}).get("tensor_parallel_size", 1))

    @property
    def actors(self) -> list[Any]:
        return list(self._actors)

    def close(self) -> None:
        ray = self._ray
        for actor in self._actors:
            try:
                ray.get(actor.stop.remote(), timeout=60)
            except Exception:  # a dead actor took its server with it (rlaif.engines.reaper)
                pass
            ray.kill(actor)
        self._actors = []
        if getattr(self, "_pg", None) is not None:
            self._remove_pg(self._pg)
            self._pg = None
        if self._own_ray and ray.is_initialized():
            ray.shutdown()


def ray_engine_from_config(cfg: Any, model_path: str | Path, enable_lora: bool, log_dir: Path) -> RayEngine:
    """The ``engine: {kind: ray, ...}`` block (an EngineConfig) as a started engine."""
    if enable_lora:
        raise EngineError(
            "engine.kind=ray serves no LoRA adapters yet: use it for the judge (judge.engine) or a policy "
            "without adapters, or engine.kind=vllm"
        )
    options: dict[str, Any] = {
        "max_model_len": cfg.max_model_len,
        "tensor_parallel_size": cfg.tensor_parallel_size,
    }
    if cfg.kv_cache_gb:
        options["kv_cache_bytes"] = int(cfg.kv_cache_gb * (1 << 30))
    if cfg.gpu_memory_utilization:
        options["extra"] = ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
    return RayEngine(
        model_path,
        replicas=cfg.replicas,
        address=cfg.address,
        replica_cpus=cfg.replica_cpus,
        replica_gpus=cfg.replica_gpus,
        serve_options=options,
        log_dir=log_dir,
        concurrency=cfg.concurrency,
    )
