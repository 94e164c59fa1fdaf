"""Loading and saving policies so that every round's output is servable by the vLLM engine.

A policy is a model directory, optionally plus a LoRA adapter directory. Guarantees:
- every directory we write carries the tokenizer files (and chat template) next to the weights, so
  vLLM and HF can load it on its own;
- adapters are plain PEFT LoRA (no bias, no DoRA, no lm_head/embedding targets), which vLLM serves
  with ``enable_lora`` as long as the rank is within its ``max_lora_rank``;
- merged models are written from a fresh load of base + saved adapter, so merging works the same
  whatever distributed wrapper trained the adapter.

Non-guarantees: models with custom code (``trust_remote_code``) are not supported; quantised bases
cannot be merged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.errors import ConfigError
from rlaif.files import apply_umask
from rlaif.train.configs import LoraSettings, PolicySpec


def check_model_dir(path: str | Path, what: str = "model") -> Path:
    """Fail early, naming the field, when a model directory is missing or not a HF model."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{what}: {path} is not a model directory (no config.json)")
    return path


def check_adapter_dir(path: str | Path, what: str = "adapter") -> Path:
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ConfigError(f"{what}: {path} is not a LoRA adapter directory (no adapter_config.json)")
    return path


def check_policy(policy: PolicySpec) -> None:
    """Fail early, naming the field, when the starting policy's model or adapter directory is not one
    (a stage that loads both checks both before any training starts)."""
    check_model_dir(policy.path, "policy.path")
    if policy.adapter is not None:
        check_adapter_dir(policy.adapter, "policy.adapter")


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str | Path, dtype=None):
    from transformers import AutoModelForCausalLM

    check_model_dir(path)
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)


def load_policy(spec: PolicySpec, *, trainable: bool = False, dtype=None):
    """The policy as a model: a ``PeftModel`` when it has an adapter (trainable when asked)."""
    model = load_causal_lm(spec.path, dtype)
    if spec.adapter is None:
        return model
    from peft import PeftModel

    check_adapter_dir(spec.adapter, "policy.adapter")
    return PeftModel.from_pretrained(model, str(spec.adapter), is_trainable=trainable)


def peft_lora_config(
    settings: LoraSettings, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None
):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type=task_type,
        modules_to_save=modules_to_save,
    )


def merge_policy(spec: PolicySpec, out_dir: str | Path, dtype=None) -> Path:
    """Fold ``spec.adapter`` into its base and write a standalone model directory (with tokenizer).

    fp32 by default: the merged model is usually the next stage's trainable starting point, and a
    bf16 merge would round the adapter's delta (and the base) before training even starts.
    """
    import torch

    out = Path(out_dir)
    model = load_policy(spec, dtype=dtype or torch.float32)
    if spec.adapter is not None:
        model = model.merge_and_unload()
    save_full_model(model, load_tokenizer(spec.path), out)
    return out


def merged_starting_base(policy: PolicySpec, out_dir: str | Path, state=None) -> Path:
    """The model directory a stage trains from: ``policy.path``, or with an adapter, the adapter merged
    into it at ``<out_dir>/base``.

    Why merge: with LoRA the reference is the base with the adapter disabled, which must be the
    starting policy; and a fresh adapter must apply to the model the round really started from. The
    local main process of each node writes the merge while the others wait (``state``: an accelerate
    ``Accelerator`` or ``PartialState``; a ``PartialState`` by default).
    """
    if policy.adapter is None:
        return Path(policy.path)
    if state is None:
        from accelerate import PartialState

        state = PartialState()
    base = Path(out_dir) / "base"
    with state.local_main_process_first():
        if state.is_local_main_process:
            merge_policy(policy, base)  # fp32: the trainable starting point
    return base


def save_full_model(model, tokenizer, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    apply_umask(out)  # safetensors writes its files 0600
    return out


def disable_dropout(model) -> None:
    """RL and preference losses compare log-probs of the same tokens twice; dropout makes them noisy."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    for name in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "attn_pdrop", "embd_pdrop"):
        if config is not None and isinstance(getattr(config, name, None), float):
            setattr(config, name, 0.0)


def decoder_layers(model):
    """The model's list of transformer blocks, found structurally (works for Llama, Qwen, Mistral, GPT-2...)."""
    import torch

    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    best = None
    for _name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            if n is not None and len(module) == n:
                return module
            if best is None or len(module) > len(best):
                best = module
    if best is None:
        raise ConfigError(f"cannot find the transformer layers of {type(model).__name__} to freeze")
    return best
