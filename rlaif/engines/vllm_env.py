"""The environment variables rlaif gives vLLM's processes, for the in-process engine (``VLLMEngine``)
and the served replicas (``launch_replica``, ``vllm serve``) alike.

Why environment variables: vLLM reads these settings in its own engine and worker processes, which
inherit the environment of the process that starts them; there is no engine argument for them.

Guarantees: a variable the user set keeps its value (``VLLM_CPU_NUM_OF_RESERVED_CPU``), or is checked
and refused by name when rlaif does not know the value (``RLAIF_VLLM_TOP_P``). Non-guarantees: both
settings act only on the CPU build of vLLM; on a GPU vLLM ignores them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rlaif.engines.cpu_top_p import ENV as TOP_P_ENV
from rlaif.engines.cpu_top_p import requested_sampler

SMALL_MACHINE_CPUS = 4
RESERVED_CPU_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"


def vllm_process_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables to add to ``environ`` before vLLM starts.

    - vLLM on CPU keeps one core for its scheduler process. On a machine with few cores that is a large
      share: on 2 cores, SmolLM2 generated 1.73x and scored 1.43x faster with no core reserved
      (``benchmarks/engine_cpu_cores.py``). So none is reserved on machines with at most
      :data:`SMALL_MACHINE_CPUS` CPUs, unless the user set ``VLLM_CPU_NUM_OF_RESERVED_CPU``.
    - vLLM's CPU sampler sorts every sequence's whole vocabulary at each step to apply ``top_p``;
      rlaif's vLLM plugin (:mod:`rlaif.engines.cpu_top_p`) finds the same nucleus among the most likely
      tokens instead when ``RLAIF_VLLM_TOP_P`` is ``topk`` (the default); ``sort`` keeps vLLM's own.
    """
    added = {TOP_P_ENV: requested_sampler(environ)}
    if (os.cpu_count() or 1) <= SMALL_MACHINE_CPUS and RESERVED_CPU_ENV not in environ:
        added[RESERVED_CPU_ENV] = "0"
    return added
