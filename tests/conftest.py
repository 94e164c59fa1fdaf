"""Session-wide fixtures: one tiny model and ONE vLLM engine shared by every test that needs them
(plus one without LoRA for text scoring, and one real ``vllm serve`` for the OpenAI-client tests), and
the tests' one run-config builder (:func:`run_config`).

Starting vLLM takes ~20 s (a ``vllm serve`` process, with its Python start and HTTP server, longer),
so each is built lazily on first use and reused; the server is stopped after its last user's test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_KV_CACHE_BYTES = 256 * 1024 * 1024


SLOW_TEST_TIMEOUT_S = 4 * 3600
"""The real-model runs marked ``slow`` take 30 min to 2 h on 2 cores; the suite's 900 s per test (the
``timeout`` in pyproject.toml) would kill every one of them, so they get this bound instead (still a
bound: a hung run ends). A test's own ``@pytest.mark.timeout`` wins."""


LAST_SERVER_USER = pytest.StashKey[str]()
_SERVERS: list = []  # the session's vllm_server replica, once started


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: the last user is one that runs
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT_S))
    users = [item.nodeid for item in items if "vllm_server" in getattr(item, "fixturenames", ())]
    if users:
        config.stash[LAST_SERVER_USER] = users[-1]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the shared ``vllm serve`` once its last user has run: it holds a model, an HTTP server and
    an engine process that the rest of the session does not need (the fixture's own teardown, at the
    session's end, then finds it stopped)."""
    if _SERVERS and item.nodeid == item.config.stash.get(LAST_SERVER_USER, None):
        _SERVERS.pop().stop()


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
        # lets tests switch rlaif's CPU top-p in the worker (tests/engines/test_cpu_top_p.py)
        extra_engine_args={"worker_extension_cls": "rlaif.engines.cpu_top_p.TopPControl"},
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


@pytest.fixture(scope="session")
def vllm_server(tiny_model_dir, tmp_path_factory):
    """A real ``vllm serve`` of the tiny model on loopback (served as ``tiny``), for the tests of the
    OpenAI-compatible client and of the CLI commands that take ``--server``; its log is ``.log``.
    Tests that read the log read only what their own requests added (other tests share the server)."""
    from rlaif.engines.serve import start_replica

    log = tmp_path_factory.mktemp("vllm_serve") / "server.log"
    replica = start_replica(
        tiny_model_dir,
        log,
        served_name="tiny",
        max_model_len=512,
        kv_cache_bytes=256 << 20,
        extra=["--enforce-eager"],
    )
    _SERVERS.append(replica)
    yield replica
    replica.stop()


# -- the one run-config builder ---------------------------------------------------------------------
TINY_RUN = {
    "engine": {"kv_cache_gb": 0.25, "max_model_len": 1024},
    "rounds": 1,
    "dpo": {
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "adapter_mode": "continue",
        "lora": {"r": 8, "alpha": 16},
        "max_length": 256,
    },
    # the random tiny model's judgments rarely parse: tests about stages turn the health checks off
    "health": {"max_judge_invalid_rate": None, "min_pairs": 0},
}
"""What a real run on the tiny model changes: a small engine, one short DPO step on a LoRA adapter
continued across rounds, no health checks."""


def merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, nested mappings key by key (``None`` values kept)."""
    out = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if nested else value
    return out


def _leaves(data: dict, head: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` for every non-mapping value (an empty mapping is a value)."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, f"{head}{key}.")
        else:
            out.append((f"{head}{key}", value))
    return out


class RunConfigBuilder:
    """``run_config(**changes)``: a :class:`RunConfig` for a self-rewarding run on a two-prompt JSONL
    file and a model directory with a 1024-token context (no weights: for logic tests);
    ``run_config.tiny(model, **changes)``: the mapping of a real run on ``model`` (:data:`TINY_RUN`);
    ``run_config.write(data)``: that mapping as a YAML file, for ``load_run_config`` or the CLI;
    ``run_config.tiny_overrides(model, **changes)``: the same settings as ``key.sub=value`` overrides
    of a shipped pipeline (``load_run_config(pipeline, overrides)``).
    ``changes`` are merged into the mapping (nested dicts key by key, ``None`` values kept)."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path

    def base(self) -> dict[str, Any]:
        model = self.tmp_path / "model"
        model.mkdir(exist_ok=True)
        config = {"model_type": "llama", "max_position_embeddings": 1024}
        (model / "config.json").write_text(json.dumps(config))
        prompts = self.tmp_path / "prompts.jsonl"
        rows = [{"id": f"p{i}", "prompt": f"Question {i}?"} for i in range(2)]
        prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {
            "name": "r",
            "output_dir": str(self.tmp_path / "runs"),
            "policy": {"path": str(model)},
            "engine": {"max_model_len": 1024},
            "prompts": {"kind": "jsonl", "path": str(prompts)},
            "feedback": {"source": "self_rewarding"},
        }

    def __call__(self, **changes: Any):
        from rlaif.config import RunConfig

        return RunConfig.model_validate(merge(self.base(), changes))

    def tiny(self, model: Path, **changes: Any) -> dict[str, Any]:
        base = merge(self.base(), {**TINY_RUN, "policy": {"path": str(model)}})
        return merge(base, changes)

    def tiny_overrides(self, model: Path, **changes: Any) -> list[str]:
        settings = merge(
            {**TINY_RUN, "output_dir": str(self.tmp_path / "runs"), "policy": {"path": str(model)}}, changes
        )
        return [f"{key}={json.dumps(value)}" for key, value in _leaves(settings)]

    def write(self, data: dict[str, Any], name: str = "run.yaml") -> Path:
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path


@pytest.fixture
def run_config(tmp_path) -> RunConfigBuilder:
    return RunConfigBuilder(tmp_path)
