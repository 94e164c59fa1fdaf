"""Session-wide fixtures: one tiny model and ONE vLLM engine shared by every test that needs them.

Starting vLLM takes ~20 s, so the engine is built lazily on first use and reused for the session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_KV_CACHE_BYTES = 256 * 1024 * 1024


def _shared_data_dir() -> Path:
    env = os.environ.get("RLAIF_SHARED_DATA")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data sets not found at {path} (set RLAIF_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from rlaif.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "model", seed=0)


@pytest.fixture(scope="session")
def vllm_engine(tiny_model_dir):
    from rlaif.engines.vllm import VLLMEngine

    engine = VLLMEngine(
        tiny_model_dir,
        seed=0,
        max_model_len=1024,
        kv_cache_memory_bytes=TEST_KV_CACHE_BYTES,
        enforce_eager=True,
        enable_lora=True,
        max_lora_rank=16,
        progress=False,
    )
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def scoring_engine(tiny_model_dir):
    """A tiny-model engine without LoRA: the session engine has LoRA on, and vLLM refuses prompt
    log-probabilities (text scoring) there."""
    from rlaif.engines.vllm import VLLMEngine

    engine = VLLMEngine(
        tiny_model_dir,
        seed=0,
        max_model_len=1024,
        kv_cache_memory_bytes=256 << 20,
        enforce_eager=True,
        progress=False,
    )
    yield engine
    engine.close()
