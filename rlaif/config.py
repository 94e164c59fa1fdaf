"""Run configuration: one YAML file per self-improvement run, validated by pydantic.

Guarantees:
- every model forbids unknown keys: a typo is an error naming the key path and the file;
- ``key.sub=value`` overrides from the command line are applied before validation and parsed as YAML
  scalars (``rounds=3``, ``dpo.beta=0.2``, ``final.kind=none``);
- relative paths are relative to the working directory (runs are started from the project root);
  ``${SHARED_DATA}`` expands to the shared data folder (``$RLAIF_SHARED_DATA`` or ``../shared/data``);
- validation never imports torch, vllm or trl and never loads a model (``rlaif validate`` is fast).

Stage option blocks (``feedback.options``, ``pairs.options``, ``dpo``, ``final.options``) are validated
against the stage's own config model, so the YAML and the Python API cannot drift apart, and they are
validated ONCE: :func:`resolve_run` turns a :class:`RunConfig` into a :class:`ResolvedRun` holding every
block as its typed model. The config layer knows no component, so the caller (the pipeline, which owns
the registry) hands over each block's model and the run-time values the stage sets itself
(:class:`Block`); stages later fill in per-round values with ``model_copy``, never by validating again.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rlaif.errors import ConfigError, describe_validation_error
from rlaif.files import load_yaml_mapping


class Strict(BaseModel):
    """The one strict base of every config model (run configs and the trainers' configs)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# Where training and per-round metrics are also logged; each name is the module that must be installed.
TRACKERS = ("tensorboard", "wandb", "trackio")


def check_report_to(names: list[str]) -> list[str]:
    """``report_to`` as transformers takes it, checked now: an unknown tracker or one that is not installed
    is a config error (``rlaif validate`` says so), not a failure when the first trainer starts."""
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"unknown tracker '{name}' (choose from {', '.join(TRACKERS)})")
        if importlib.util.find_spec(name) is None:
            raise ValueError(f"'{name}' is not installed (pip install {name})")
    return list(dict.fromkeys(names))


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


class EngineConfig(Strict):
    """How to serve a model for generation and judging."""

    kind: Literal["vllm", "openai", "ray"] = Field(
        "vllm",
        description="In-process vLLM, OpenAI-compatible server(s), or vLLM replicas started as Ray actors.",
    )
    url: str | None = Field(None, description="Base URL for kind=openai, e.g. http://127.0.0.1:8000/v1.")
    urls: list[str] | None = Field(
        None,
        description="Several replicas of the same model for kind=openai (instead of url); requests go to "
        "the least-loaded one, a replica that stays down is dropped.",
    )
    model: str | None = Field(None, description="Served model name (openai) or model path override.")
    api_key_env: str | None = Field(
        None,
        description="kind=openai: the environment variable holding the servers' API key (sent as a Bearer "
        "token, e.g. for `vllm serve --api-key`); the key itself never goes in a config file.",
    )
    max_model_len: int | None = Field(1024, description="Context length to reserve.")
    kv_cache_gb: float | None = Field(None, description="KV cache size in GiB (CPU); default 1.")
    gpu_memory_utilization: float | None = Field(None, description="GPU memory fraction for vLLM.")
    tensor_parallel_size: int = Field(1, description="vLLM tensor parallelism.")
    data_parallel_size: int = Field(1, description="vLLM data parallelism.")
    concurrency: int = Field(16, description="Requests in flight per server for kind=openai and kind=ray.")
    during_training: Literal["close", "keep"] = Field(
        "close",
        description="This vLLM engine while a training stage runs: close (frees its memory; it is "
        "started again when a later stage needs it) or keep (no restart; engine and trainer share memory).",
    )
    replicas: int = Field(1, ge=1, description="kind=ray: how many vLLM replicas (one `vllm serve` each).")
    address: str | None = Field(
        None,
        description="kind=ray: Ray cluster to join (e.g. 'auto' or ray://host:10001); default a local one.",
    )
    replica_cpus: float = Field(1.0, gt=0, description="kind=ray: CPUs reserved per replica.")
    replica_gpus: float | None = Field(
        None,
        ge=0,
        description="kind=ray: GPUs per replica (default tensor_parallel_size when GPUs exist, else 0).",
    )

    @model_validator(mode="after")
    def _url_for_openai(self) -> EngineConfig:
        if self.kind == "openai" and not self.url and self.urls is None:
            raise ValueError("engine.kind=openai needs engine.url or engine.urls")
        if self.url and self.urls:
            raise ValueError("set engine.url or engine.urls, not both")
        if self.urls is not None:
            if self.kind != "openai":
                raise ValueError(f"engine.urls is for kind=openai, not kind={self.kind}")
            bad = [u for u in self.urls if not u.startswith(("http://", "https://"))]
            if not self.urls or bad:
                raise ValueError(f"engine.urls needs http(s):// URLs, got {bad or 'an empty list'}")
            if len(set(self.urls)) != len(self.urls):
                raise ValueError("engine.urls lists a server twice")
        if self.data_parallel_size > 1 and self.kind == "vllm":
            raise ValueError(
                "engine.data_parallel_size > 1: vLLM refuses data parallelism in one process; run "
                "replicas instead (engine.kind=ray with engine.replicas, or engine.urls)"
            )
        if self.api_key_env is not None and self.kind != "openai":
            raise ValueError(f"engine.api_key_env is for kind=openai, not kind={self.kind}")
        ray_only = [k for k in ("address",) if getattr(self, k) is not None]
        if self.kind != "ray" and (ray_only or self.replicas != 1):
            raise ValueError(f"engine.{(ray_only or ['replicas'])[0]} is for kind=ray, not kind={self.kind}")
        return self

    @property
    def servers(self) -> list[str]:
        """The OpenAI-compatible servers of kind=openai (url or urls)."""
        return list(self.urls) if self.urls else [self.url] if self.url else []


class JudgeConfig(Strict):
    """Who judges (the policy itself, a separate model, or a server) and with which one judge spec.

    ``template``/``kind``/``options`` are one ``rlaif.judges.spec.JudgeSpec``, validated where the run
    is resolved (this layer does not import judges)."""

    model: str = Field("policy", description="'policy', a model directory, or 'openai'.")
    engine: EngineConfig | None = Field(None, description="Engine for a separate judge model.")
    template: str | None = Field(
        None, description="Built-in template name, template file, or package.module:function."
    )
    kind: str | None = Field(
        None,
        description="rubric, label_probability, likelihood, pairwise, principle, python or length "
        "(default: what the template drives).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The kind's own options (e.g. samples, both_orders), typed by it."
    )

    @property
    def spec(self) -> dict[str, Any] | None:
        """The judge spec as written (None: every use takes its default judge)."""
        if self.template is None and self.kind is None and not self.options:
            return None
        given = {"template": self.template, "kind": self.kind}
        return {**{k: v for k, v in given.items() if v is not None}, **self.options}


class PromptSource(Strict):
    """Where prompts or problems come from."""

    kind: Literal["jsonl", "hh", "mtbench", "code", "hf_dataset", "demo_code"] = Field(
        ...,
        description="File format: JSONL prompts, HH transcripts, MT-Bench questions, code problems, "
        "a local HF datasets directory, or the demo's synthetic code tasks.",
    )
    path: str | None = Field(None, description="File or directory (not needed for demo_code).")
    limit: int | None = Field(None, description="Use only the first N records.")
    split: Literal["train", "heldout", "all"] = Field("all", description="For demo_code: which split.")
    id_range: tuple[int, int] | None = Field(
        None,
        description="Keep records whose id ends in a number within [lo, hi] (e.g. MBPP train = [601, 974]).",
    )
    malformed: Literal["skip", "error"] = Field(
        "skip",
        description="A malformed record (HH turns not alternating, a missing field): skip it and count it "
        "(shown by validate, in stats and in the report) or stop with an error naming file and line. "
        "Applies to jsonl, hh and mtbench files; code problems are always strict.",
    )


class FeedbackConfig(Strict):
    """The feedback source of each round: which one and its own options."""

    source: str = Field(
        ..., description="Built-in source (rlcd, sl_cai, rl_cai, self_rewarding, rlcf) or module:function."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The source's own config (validated against it)."
    )
    chunk_size: int = Field(
        16, ge=1, description="Prompts per resumable chunk (each chunk is written atomically)."
    )


class PairsStageConfig(Strict):
    """The pairs stage: the one place a run filters pairs (validated against rlaif.pairs.PairFilterConfig)."""

    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Pair filters (min_margin, dedup, drop_identical, max_length_ratio).",
    )


class SFTStageConfig(Strict):
    """Supervised fine-tuning before the DPO rounds on the records a feedback source writes (SL-CAI's
    revisions), as Constitutional AI trains its SL stage before RL."""

    feedback: FeedbackConfig = Field(..., description="The source writing SFT records (e.g. sl_cai).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The SFT trainer's own config (rlaif.train.sft.SFTConfig)."
    )


class FinalRoundConfig(Strict):
    """An optional RL round (PPO, GRPO or RLOO) after the DPO rounds, and what rewards it."""

    kind: Literal["none", "ppo", "grpo", "rloo"] = Field("none", description="Final RL round.")
    reward: Literal["sandbox", "verifier", "reward_model", "judge"] = Field(
        "sandbox",
        description="What scores rollouts: sandbox (code problems' tests), verifier (the prompts' own "
        "verifier: the sandbox for code, the instruction checker for prompts listing 'instructions'), "
        "reward_model (trained on the run's pairs) or judge (the run's score judge).",
    )
    reward_kind: str = Field(
        "fraction", description="Verifier reward map (sandbox, verifier): binary, fraction, coderl, rltf."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The trainer's own config.")


class InstructionEvalConfig(Strict):
    """Held-out verifiable instructions (rlaif.instructions): pass rate checked by code, not a judge."""

    prompts: PromptSource = Field(..., description="Prompts whose records list their 'instructions'.")
    samples: int = Field(1, ge=1, description="Replies per prompt.")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy replies.")
    more_sets: dict[str, PromptSource] = Field(
        default_factory=dict,
        description="More held-out sets checked the same way (name -> prompts, e.g. paraphrased: held-out "
        "wordings and values); their metrics are named <name>_instruction_pass_rate, ...",
    )


class EvalConfig(Strict):
    """Evaluation after every round: code pass@k, win rate against the previous round, instructions."""

    code_problems: PromptSource | None = Field(None, description="Held-out code problems for pass@k.")
    code_samples: int = Field(4, description="Samples per held-out problem for pass@1 (unbiased estimator).")
    code_temperature: float = Field(1.0, description="Sampling temperature for pass@k.")
    win_rate_prompts: PromptSource | None = Field(None, description="Prompts for round k vs k-1 win rate.")
    win_rate_limit: int = Field(32, description="Prompts used for the win rate.")
    win_rate_judge: str | None = Field(
        None,
        description="Pairwise judge for the win rate when judge.template is not one (built-in name, "
        "template file, or module:function); default: judge.template, else the built-in 'pairwise'.",
    )
    max_tokens: int = Field(128, description="Max tokens for evaluation samples.")
    instructions: InstructionEvalConfig | None = Field(
        None, description="Held-out verifiable-instruction prompts: pass rate per round."
    )


class SandboxConfig(Strict):
    """The code sandbox every stage of the run shares (RLCF feedback, code rewards, pass@k)."""

    isolation: Literal["required", "none"] | None = Field(
        None,
        description="Where nothing can isolate untrusted code (not root, no user namespace): 'required' "
        "refuses to run it, 'none' runs it anyway as your own user (isolation is still used wherever "
        "the machine offers it). Unset: refuse unless RLAIF_SANDBOX_ISOLATION=none is set.",
    )


class HealthConfig(Strict):
    """Checks that stop a run whose numbers say it is not working, instead of ending with exit 0."""

    max_judge_invalid_rate: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Stop when more than this fraction of a stage's judgments are invalid (null: never).",
    )
    min_pairs: int = Field(
        1, ge=0, description="Stop when a round has fewer preference pairs than this (after filtering)."
    )
    min_judge_consistency: float | None = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Warn when the win-rate judge's position consistency is below this (a judge that "
        "ignores the answers scores 0.5 or less; null: never).",
    )
    drop_p_value: float | None = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="Warn when a round's paired held-out outcomes (code samples, pass@k problems, "
        "instructions) fall vs the previous round with a sign-test p below this (null: never).",
    )
    max_invalid_rate_rise: float | None = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Warn when a stage's judge invalid rate exceeds the lowest of the earlier rounds' "
        "by more than this (null: never).",
    )
    warnings_as_errors: bool | list[str] = Field(
        False,
        description="Stop the run on the report's warnings: true for all, or a list of checks "
        "(judge_consistency, drop, invalid_rise).",
    )

    @field_validator("warnings_as_errors")
    @classmethod
    def _known_checks(cls, value: bool | list[str]) -> bool | list[str]:
        known = ("judge_consistency", "drop", "invalid_rise")
        unknown = [v for v in value if v not in known] if isinstance(value, list) else []
        if unknown:
            raise ValueError(f"unknown check {unknown[0]!r} (known: {', '.join(known)})")
        return value


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


# -- loading ----------------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    env = os.environ.get("RLAIF_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _set_dotted(data: dict, dotted: str, value: Any, file: str) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        if node.get(key) is None:
            node[key] = {}
        if not isinstance(node[key], dict):
            raise ConfigError(f"{file}: override '{dotted}': '{key}' is not a mapping")
        node = node[key]
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str], file: str) -> dict:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': value is not valid YAML ({exc})") from None
        _set_dotted(data, key.strip(), value, file)
    return data


def _expand(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, base) for v in value]
    if isinstance(value, str) and "${SHARED_DATA}" in value:
        return value.replace("${SHARED_DATA}", str(shared_data_dir()))
    return value


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override, validate; every error names the file and the key."""
    path = Path(path)
    data = load_yaml_mapping(path)
    data = apply_overrides(data, overrides or [], str(path))
    data = _expand(data, path.parent)
    cfg = validate_model(RunConfig, data, str(path))
    return cfg.model_copy(update={"source_file": str(path)})


def validate_model(model: type[BaseModel], data: Any, file: str = "config", prefix: str = "") -> Any:
    """The one validator of config models: one error line naming ``file`` and the key (``prefix``: where
    the block sits in the file, e.g. ``dpo.``), an unknown key with the key the user probably meant."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = describe_validation_error(exc, limit=1, prefix=prefix, config_keys=True, model=model)
        raise ConfigError(f"{file}: {problem}") from None


# -- resolution: every option block validated once --------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One option block to resolve: its config model (None: passed on as the plain mapping), the
    user's mapping, values the stage sets when the user does not (``defaults``) and values the stage
    always sets itself (``forced``, e.g. the policy a round starts from); ``trains``: the block
    configures a training stage this run executes (its LoRA decides what the policy engine serves)."""

    model: type[BaseModel] | None
    options: Mapping[str, Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    forced: Mapping[str, Any] = field(default_factory=dict)
    trains: bool = False


@dataclass(frozen=True)
class ResolvedRun:
    """A run config with every option block validated against its stage's model, once.

    ``blocks`` maps the YAML key (``feedback.options``, ``pairs.options``, ``dpo``, ``final.options``)
    to the typed model (or the mapping, for a plug-in without a config model); ``user_keys`` holds the
    keys the user wrote in each block, so a stage knows which run-time values it may still set;
    ``training`` the keys of the blocks whose training stage the run executes.
    """

    config: RunConfig
    blocks: Mapping[str, Any]
    user_keys: Mapping[str, frozenset[str]]
    training: frozenset[str] = frozenset()

    def block(self, key: str) -> Any:
        if key not in self.blocks:
            raise ConfigError(f"'{key}' was not resolved for this run")
        return self.blocks[key]

    def runtime(self, key: str, defaults: Mapping[str, Any], forced: Mapping[str, Any]) -> Any:
        """The block with a stage's run-time values filled in: ``defaults`` where the user did not set
        the key, ``forced`` always (typed values: they are not validated again)."""
        user = self.user_keys.get(key, frozenset())
        block = self.block(key)
        defaults = {**self._tracking(block, defaults.get("output_dir")), **defaults}
        kept = {**{k: v for k, v in defaults.items() if k not in user}, **forced}
        return block.model_copy(update=kept) if isinstance(block, BaseModel) else {**block, **kept}

    def _tracking(self, block: Any, stage_dir: Any) -> dict[str, Any]:
        """A trainer block's report_to is the run's, its tensorboard folder the stage's own under
        ``<run>/tensorboard/`` (``round_1/train``, ...), so one ``tensorboard --logdir`` shows the run."""
        if not isinstance(block, BaseModel) or "report_to" not in type(block).model_fields:
            return {}
        out = {"report_to": list(self.config.report_to)}
        if stage_dir is not None:
            out["logging_dir"] = self.config.tracking_dir(stage_dir)
        return out


def resolve_run(cfg: RunConfig, blocks: Mapping[str, Block]) -> ResolvedRun:
    """Validate each block (defaults < user's options < forced values); errors name the file and key."""
    file = cfg.source_file or "config"
    typed = {}
    for key, block in blocks.items():
        data = {**block.defaults, **block.options, **block.forced}
        typed[key] = data if block.model is None else validate_model(block.model, data, file, f"{key}.")
    keys = {key: frozenset(block.options) for key, block in blocks.items()}
    training = frozenset(key for key, block in blocks.items() if block.trains)
    return ResolvedRun(config=cfg, blocks=typed, user_keys=keys, training=training)
