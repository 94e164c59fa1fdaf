"""The run's engine serves the LoRA rank the run trains: a rank-32 adapter (above vLLM's default
``max_lora_rank`` of 16) loads and generates on the engine :func:`build_engine` starts for it."""

from __future__ import annotations

from rlaif.config import EngineConfig
from rlaif.engines.base import Sampling
from rlaif.pipeline.engines import build_engine
from rlaif.train.configs import LoraSettings
from rlaif.train.models import load_causal_lm, load_tokenizer, peft_lora_config


def test_a_rank_32_adapter_is_served_by_the_engine_built_for_it(tiny_model_dir, tmp_path):
    from peft import get_peft_model

    adapter = tmp_path / "adapter"
    model = get_peft_model(load_causal_lm(tiny_model_dir), peft_lora_config(LoraSettings(r=32, alpha=64)))
    model.save_pretrained(str(adapter))
    load_tokenizer(tiny_model_dir).save_pretrained(str(adapter))

    cfg = EngineConfig(max_model_len=256, kv_cache_gb=0.25)
    engine = build_engine(cfg, tiny_model_dir, lora_rank=32)
    try:
        (out,) = engine.generate(["Hello"], Sampling(max_tokens=4, temperature=0.0), adapter=str(adapter))
    finally:
        engine.close()
    assert out[0].text is not None and out[0].token_ids
