"""Shared state of one run: paths, engines (started lazily, reused across rounds), the current policy.

Why one place: starting vLLM costs ~20 s on CPU and minutes on big GPUs; the policy engine is started
once on the base model with LoRA enabled and every round's adapter is served per request. Only when a
stage produces a new base model (full fine-tuning or a merged adapter) is the engine restarted. With
``engine.adapter_serving: merged`` the engine never enables LoRA: each round's adapter is merged into a
copy of the base inside the run directory (:mod:`rlaif.pipeline.served_model`) and the engine is
restarted on that copy when the served adapter changes (plain weights generate 2.2-2.7x faster on CPU
and can score text); training still continues from the adapter. By
default the run's own vLLM engines are closed while a training stage runs and started again when a
later stage asks for them (``engine.during_training``): on a small model, an engine kept alive beside
the trainer added its 2-3 GB to the run's peak.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.config import RunConfig
from rlaif.errors import ConfigError, EngineError
from rlaif.pipeline.engines import build_engine, describe_start
from rlaif.pipeline.resolve import ResolvedRun, lora_rank, serves_adapters
from rlaif.pipeline.served_model import SERVED_DIR, merged_key, served_model
from rlaif.sandbox import SandboxPool
from rlaif.sandbox.policy import allow_unisolated


@dataclass
class Policy:
    """The model the run is improving, as served: base directory + optional LoRA adapter."""

    path: Path
    adapter: Path | None = None

    def describe(self) -> dict[str, str | None]:
        return {"path": str(self.path), "adapter": str(self.adapter) if self.adapter else None}


class AdapterBoundEngine:
    """An engine view that always serves one adapter, so sources written for plain engines serve the
    current round's policy without knowing about adapters."""

    def __init__(self, engine: Any, adapter: str | None):
        self.engine = engine
        self.adapter = adapter
        self.model_name = engine.model_name + (f"+{Path(adapter).name}" if adapter else "")
        self.tokenizer = getattr(engine, "tokenizer", None)

    @property
    def supports_guided_json(self) -> bool:
        return self.engine.supports_guided_json

    def generate(self, prompts, sampling, adapter=None):
        return self.engine.generate(prompts, sampling, adapter=adapter or self.adapter)

    def __getattr__(self, name: str) -> Any:  # count_prompt_tokens, max_model_len, llm, ...
        return getattr(self.engine, name)

    def close(self) -> None:  # the underlying engine is owned by the run
        pass


class MergedAdapterEngine(AdapterBoundEngine):
    """An engine started on ``adapter`` merged into its base (no LoRA): sources still name the round's
    adapter per request (pair provenance), which is served as a plain request; any other adapter is
    refused, since this engine has no LoRA to apply it with. Named like the LoRA view (base+adapter),
    so provenance reads the same whichever way the policy is served."""

    def __init__(self, engine: Any, base: Path, adapter: Path):
        super().__init__(engine, None)
        self.adapter = str(adapter)
        self.model_name = f"{base}+{adapter.name}"

    def _check(self, adapter: str | None) -> None:
        if adapter is not None and Path(adapter) != Path(self.adapter):
            raise EngineError(
                f"adapter {adapter} was requested from the policy engine, which serves {self.adapter} "
                "merged into its base without LoRA (engine.adapter_serving: merged); use "
                "engine.adapter_serving: lora to serve several adapters"
            )

    def generate(self, prompts, sampling, adapter=None):
        self._check(adapter)
        return self.engine.generate(prompts, sampling)

    def score_continuations(self, prompts, continuations, adapter=None):
        self._check(adapter)
        return self.engine.score_continuations(prompts, continuations)


def _closes(engine_cfg: Any) -> bool:
    return engine_cfg.kind == "vllm" and engine_cfg.during_training == "close"


@dataclass
class RunContext:
    """``run``: the config with every option block resolved once (:mod:`rlaif.pipeline.resolve`)."""

    run: ResolvedRun
    run_dir: Path
    policy: Policy
    events_path: Path = field(init=False)
    _engine: Any = None
    _engine_model: Path | None = None
    _judge_engine: Any = None
    _sandbox: Any = None
    _external_engine: Any = None

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.run_dir / "metrics.jsonl"

    @property
    def cfg(self) -> RunConfig:
        return self.run.config

    # -- engines ----------------------------------------------------------------------------------
    def policy_engine(self) -> Any:
        """The policy as an engine (current adapter bound)."""
        if self.cfg.engine.kind == "openai":
            if self._engine is None:
                self._engine = self._start("policy", self.cfg.engine, self.policy.path, lora_rank=None)
            if self.policy.adapter is not None:
                raise ConfigError(
                    "engine.kind=openai cannot serve a freshly trained adapter; use engine.kind=vllm for "
                    "multi-round runs (or serve each round's adapter yourself)"
                )
            return self._engine
        model = self.served_path()
        if self._engine is None or self._engine_model != model:
            if self._engine is not None and self._engine is not self._external_engine:
                self._engine.close()  # before a merge: the old engine's memory is freed first
            self._engine = None
            if model != self.policy.path:
                served_model(self.run_dir, self.policy.path, self.policy.adapter, self.say, self.log_event)
            self.log_event("engine_start", model=str(model))
            self._engine = self._start(
                "policy", self.cfg.engine, model, lora_rank=self.engine_lora_rank(),
                where=self.cfg.source_file or "config", log_dir=self.run_dir / "ray_replicas",
            )  # fmt: skip
            self._engine_model = model
        if self.policy.adapter is not None and self.merges_adapters():
            return MergedAdapterEngine(self._engine, self.policy.path, self.policy.adapter)
        return AdapterBoundEngine(self._engine, str(self.policy.adapter) if self.policy.adapter else None)

    def merges_adapters(self) -> bool:
        """Whether the policy's adapter is served merged into its base (``engine.adapter_serving``)."""
        return self.cfg.engine.kind == "vllm" and self.cfg.engine.adapter_serving == "merged"

    def served_path(self) -> Path:
        """The model directory the policy engine runs on: the policy's base, or with merged serving of
        an adapter, the merged copy in the run directory (computed without merging)."""
        if self.policy.adapter is None or not self.merges_adapters():
            return self.policy.path
        return self.run_dir / SERVED_DIR / merged_key(self.policy.path, self.policy.adapter)

    def serves_adapters(self) -> bool:
        """Whether the policy engine may ever serve a LoRA adapter in this run.

        Why not always: vLLM's LoRA layers refuse prompt log-probabilities (text scoring, used by the
        contrastive-likelihood judge and by ``instruction_contrast`` candidates), so a run that only
        fine-tunes full weights, or serves its adapters merged, starts its engine without LoRA."""
        if self.merges_adapters():
            return False
        return self.policy.adapter is not None or serves_adapters(self.run)

    def engine_lora_rank(self) -> int | None:
        """The largest adapter rank the policy engine serves (None: it starts without LoRA)."""
        if not self.serves_adapters():
            return None
        return max(lora_rank(self.run) or 0, 1)

    def judge_engine(self) -> Any:
        """The judge: the policy itself, or a separate model/server."""
        judge = self.cfg.judge
        if judge.model == "policy":
            return self.policy_engine()
        if self._judge_engine is None:
            engine_cfg = judge.engine or self.cfg.engine
            key = "judge.engine" if judge.engine else "engine"
            self._judge_engine = self._start(
                "judge", engine_cfg, judge.model, lora_rank=None, key=key,
                where=self.cfg.source_file or "config", log_dir=self.run_dir / "ray_replicas",
            )  # fmt: skip
        return self._judge_engine

    def _start(self, role: str, engine_cfg: Any, model: Any, **kwargs: Any) -> Any:
        """:func:`build_engine` between two lines of run output (what starts; when it is ready), since
        a run's engine starts inside a stage and vLLM itself is quiet in a run. Said only once the
        engine's checks passed: a refused engine was never started."""
        line = f"  starting the {role} engine: {describe_start(engine_cfg, model, kwargs['lora_rank'])}"
        began = time.monotonic()
        engine = build_engine(engine_cfg, model, on_start=lambda: self.say(line), **kwargs)
        seconds = time.monotonic() - began
        self.log_event("engine_ready", role=role, model=str(model), seconds=round(seconds, 1))
        self.say(f"  {role} engine ready in {seconds:.0f} s")
        return engine

    def sandbox(self) -> Any:
        """One pre-forked sandbox pool for the whole run (code feedback, rewards, pass@k)."""
        if self._sandbox is None:
            self._sandbox = SandboxPool(allow_unisolated=allow_unisolated(self.cfg.sandbox.isolation))
        return self._sandbox

    def adopt_engine(self, engine: Any, model_path: Path) -> None:
        """Use an engine someone else started (and will close) for the policy at ``model_path``."""
        self._engine = self._external_engine = engine
        self._engine_model = model_path

    def release_for_training(self) -> None:
        """Close the run's own vLLM engines before a training stage (``during_training: close`` in
        ``engine:``, and in ``judge.engine:`` for a separate judge).

        Why: a vLLM engine holds the model, its KV cache and its worker processes (2-3 GB for a 135M
        model on CPU) while the trainer holds the model again with gradients and optimiser state; the
        two together set the run's peak. vLLM's sleep mode would keep the engine warm, but it needs CUDA.
        Engines are started again lazily by :meth:`policy_engine` / :meth:`judge_engine`. An engine
        someone else started (``Runner(engine=...)``) and OpenAI-compatible servers are left alone."""
        judge_cfg = self.cfg.judge.engine or self.cfg.engine
        closing = {
            "policy": self._engine if _closes(self.cfg.engine) else None,
            "judge": self._judge_engine if _closes(judge_cfg) else None,
        }
        closing = {k: e for k, e in closing.items() if e is not None and e is not self._external_engine}
        for engine in closing.values():
            engine.close()
        if "policy" in closing:
            self._engine, self._engine_model = None, None
        if "judge" in closing:
            self._judge_engine = None
        if closing:
            self.log_event("engines_released", engines=sorted(closing))
            self.say(
                f"  closed the {' and '.join(sorted(closing))} engine for training (engine.during_training)"
            )

    def close_engines(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        for eng in (self._engine, self._judge_engine):
            if eng is not None and eng is not self._external_engine:
                eng.close()
        self._engine = None
        self._engine_model = None
        self._judge_engine = None

    # -- events -----------------------------------------------------------------------------------
    def log_event(self, event: str, **data: Any) -> None:
        record = {"time": round(time.time(), 3), "event": event, **data}
        with open(self.events_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    def say(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
