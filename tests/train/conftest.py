"""Fixtures for the training tests: toy pair/prompt files on the session's tiny model.

The tiny model is random, so the data are built to be learnable in seconds: DPO pairs whose chosen and
rejected answers differ in a fixed way, reward-model pairs separable by their last words, and a PPO
reward that is verifiable from token ids alone.
"""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

import pytest

from rlaif.records import Message, PreferencePair, PromptRecord, write_jsonl

WORDS = ["apple", "river", "stone", "cloud", "green", "music", "table", "light", "paper", "sound"]


def make_dpo_pairs(n: int = 16, seed: int = 0) -> list[PreferencePair]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        topic = rng.choice(WORDS)
        pairs.append(
            PreferencePair(
                id=f"dpo-{i}",
                prompt=[Message(role="user", content=f"Tell me about the {topic} number {i}.")],
                chosen=f"The {topic} is good, thank you.",
                rejected=f"No. Go away about {topic}!",
                source="test",
            )
        )
    return pairs


def make_rm_pairs(n: int = 64, seed: int = 0) -> list[PreferencePair]:
    """Separable: chosen always ends 'thank you', rejected 'go away'; the rest is shared noise."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        body = " ".join(rng.sample(WORDS, 3))
        pairs.append(
            PreferencePair(
                id=f"rm-{i}",
                prompt=[Message(role="user", content=f"Describe {rng.choice(WORDS)}.")],
                chosen=f"{body} thank you",
                rejected=f"{body} go away",
                soft_label=0.9 if i % 2 else None,
                source="test",
            )
        )
    return pairs


def make_prompts(n: int = 32) -> list[PromptRecord]:
    return [
        PromptRecord(
            id=f"q{i}", messages=[Message(role="user", content=f"Write about {WORDS[i % len(WORDS)]} {i}.")]
        )
        for i in range(n)
    ]


def pytest_runtest_setup(item):
    """Machines without vLLM (a GPU box with only torch/transformers/peft/accelerate): the tests that
    need the engine are skipped with a reason instead of erroring in the session fixture."""
    if "vllm_engine" in getattr(item, "fixturenames", ()) and importlib.util.find_spec("vllm") is None:
        pytest.skip("needs vLLM (not installed in this environment)")


@pytest.fixture(scope="session")
def device():
    """Where the stages put their models: CUDA when there is one (accelerate's choice), else CPU.

    Tests move their own tensors here before comparing, so the same suite is meaningful on both.
    """
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _assert_changed_in_fp32(start: dict, after: dict, keys=None) -> None:
    import torch

    keys = list(start) if keys is None else list(keys)
    assert keys
    assert {after[k].dtype for k in keys} == {torch.float32}, {after[k].dtype for k in keys}
    assert any(not torch.equal(start[k].float().cpu(), after[k].cpu()) for k in keys)


@pytest.fixture(scope="session")
def assert_changed_in_fp32():
    """``assert_changed_in_fp32(start, after, keys=None)`` on two state dicts: "weights changed" that
    cannot pass by a dtype change alone - the trained tensors must be fp32 (fp32 master weights) and
    at least one must differ from its start in value."""
    return _assert_changed_in_fp32


@pytest.fixture(autouse=True)
def auto_precision_as_on_a_gpu(monkeypatch):
    """``RLAIF_TEST_AUTO_PRECISION=bf16`` makes ``precision: auto`` resolve as on a bf16 GPU, so the
    whole suite runs the GPU's mixed-precision path on a CPU (through CPU autocast). Unset: no effect."""
    forced = os.environ.get("RLAIF_TEST_AUTO_PRECISION")
    if forced:
        from rlaif.train import precision

        real = precision.resolve_precision
        monkeypatch.setattr(precision, "resolve_precision", lambda p: forced if p == "auto" else real(p))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from intra-op threads, and on a loaded 2-core machine OpenMP's
    spinning threads make small matmuls ~4x slower; restored afterwards for other areas' tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_prompts():
    """A factory: ``toy_prompts(n)`` -> n PromptRecords."""
    return make_prompts


@pytest.fixture(scope="session")
def dpo_pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train_data") / "dpo_pairs.jsonl"
    write_jsonl(path, make_dpo_pairs())
    return path


@pytest.fixture(scope="session")
def rm_pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train_data") / "rm_pairs.jsonl"
    write_jsonl(path, make_rm_pairs())
    return path


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train_data") / "prompts.jsonl"
    write_jsonl(path, make_prompts())
    return path


@pytest.fixture(scope="session")
def trained_reward_model(tiny_model_dir, rm_pairs_file, tmp_path_factory):
    """One reward model for the session (RM tests and PPO's critic initialisation share it)."""
    import torch

    from rlaif.train.configs import RewardModelConfig
    from rlaif.train.reward_model import train_reward_model

    threads = torch.get_num_threads()  # session fixtures run before the autouse one-thread fixture
    torch.set_num_threads(1)
    cfg = RewardModelConfig(
        output_dir=tmp_path_factory.mktemp("rm"),
        model=tiny_model_dir,
        pairs=[rm_pairs_file],
        eval_fraction=0.25,
        freeze_fraction=0.7,
        learning_rate=3e-3,
        num_train_epochs=3,
        per_device_train_batch_size=8,
    )
    try:
        return cfg, train_reward_model(cfg)
    finally:
        torch.set_num_threads(threads)
