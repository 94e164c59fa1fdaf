"""One self-improvement run as one model: :class:`RunConfig` and its top-level blocks.

Guarantees: unknown keys are refused at every level; the output layout (``<output_dir>/<name>/``,
``<run>/tensorboard/<stage>``) is decided here. Non-guarantees: cross-field rules (a sandbox reward on
text prompts, LoRA ranks vs the engine, ...) are checked when the run is compiled
(:mod:`rlaif.pipeline.compile`), where the components are known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from rlaif.config.base import Strict, check_report_to
from rlaif.config.engine import EngineConfig, JudgeConfig
from rlaif.config.health import HealthConfig
from rlaif.config.stages import (
    EvalConfig,
    FeedbackConfig,
    FinalRoundConfig,
    PairsStageConfig,
    PromptSource,
    SFTStageConfig,
)


class TinyModelBuild(Strict):
    """Build the policy locally before the run (demo and smoke tests; no downloads)."""

    seed: int = Field(0, description="Seed for tokenizer/weights.")
    hidden_size: int = Field(128, description="Hidden size; heads = hidden/64.")
    num_layers: int = Field(2, description="Transformer layers.")
    vocab_size: int = Field(512, description="BPE vocabulary size.")
    corpus: str | None = Field(
        None, description="Text file to train tokenizer and weights on; 'demo:code' = synthetic code tasks."
    )
    steps: int = Field(0, description="Pre-training steps on the corpus.")
    learning_rate: float = Field(3e-3, description="Pre-training peak learning rate.")


class ModelConfig(Strict):
    """The policy: a local model directory (or hub name on machines that have one), optional adapter."""

    path: str = Field(..., description="Model directory (or, with build_tiny, where to build it).")
    adapter: str | None = Field(None, description="LoRA adapter to start from.")
    build_tiny: TinyModelBuild | None = Field(None, description="Build a tiny model at `path` first.")


class SandboxConfig(Strict):
    """The code sandbox every stage of the run shares (RLCF feedback, code rewards, pass@k)."""

    isolation: Literal["required", "none"] | None = Field(
        None,
        description="Where nothing can isolate untrusted code (not root, no user namespace): 'required' "
        "refuses to run it, 'none' runs it anyway as your own user (isolation is still used wherever "
        "the machine offers it). Unset: refuse unless RLAIF_SANDBOX_ISOLATION=none is set.",
    )


class LaunchSettings(Strict):
    """The run's ``train:`` block: how its training stages are launched (``rlaif.train.launch``)."""

    num_processes: int = Field(1, ge=1, description="Processes (one per GPU; CPU processes use gloo).")
    accelerate_config: str | None = Field(
        None,
        description="accelerate config file (from `accelerate config`): DeepSpeed ZeRO, FSDP, multi-node.",
    )
    main_process_port: int | None = Field(
        None, ge=1, le=65535, description="Rendezvous port (default: a free one on this machine)."
    )

    @property
    def distributed(self) -> bool:
        """Whether stages must go through ``accelerate launch`` at all."""
        return self.num_processes > 1 or self.accelerate_config is not None


class RunConfig(Strict):
    """One self-improvement run: rounds of feedback → pairs → DPO → evaluate, then an optional RL round."""

    name: str = Field(..., description="Run name; outputs go to <output_dir>/<name>/.")
    seed: int = Field(0, description="Global seed; every sample's seed derives from it and the record id.")
    output_dir: str = Field("runs", description="Parent directory of the run directory.")
    policy: ModelConfig
    engine: EngineConfig = Field(default_factory=EngineConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    prompts: PromptSource
    feedback: FeedbackConfig
    pairs: PairsStageConfig = Field(default_factory=PairsStageConfig)
    sft: SFTStageConfig | None = Field(None, description="SFT on a source's records before round 1.")
    rounds: int = Field(1, ge=0, description="Number of DPO rounds.")
    dpo: dict[str, Any] = Field(default_factory=dict, description="DPO round config (rlaif.train).")
    final: FinalRoundConfig = Field(default_factory=FinalRoundConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    train: LaunchSettings = Field(
        default_factory=LaunchSettings,
        description="Training stages on several processes (accelerate launch): DPO, SFT, a reward model's final round.",
    )

    report_to: list[str] = Field(
        default_factory=list,
        description="Also log to these trackers (tensorboard; wandb, trackio when installed): every "
        "trainer's steps, and with tensorboard the per-round metrics, under <run>/tensorboard/.",
    )

    _report_to = field_validator("report_to")(check_report_to)

    # set by the loader, not by users
    source_file: str | None = Field(None, exclude=True, description="(internal) the YAML file.")

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def tracking_dir(self, stage_dir: str | Path) -> Path:
        """A stage's tensorboard folder: ``<run>/tensorboard/<the stage's path in the run>``."""
        stage_dir, run_dir = Path(stage_dir), self.run_dir()
        try:
            return run_dir / "tensorboard" / stage_dir.relative_to(run_dir)
        except ValueError:
            return run_dir / "tensorboard" / stage_dir.name
