"""The pipeline tests' one run-config builder: a valid run on small local files, changed per test."""

from __future__ import annotations

import json

import pytest

from rlaif.config import RunConfig


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


@pytest.fixture
def run_config(tmp_path):
    """``run_config(**changes)``: a :class:`RunConfig` for a self-rewarding run on a two-prompt JSONL file
    and a model directory with a 1024-token context; ``changes`` are merged into the mapping
    (nested dicts key by key, ``None`` values kept)."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 1024}))
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"Question {i}?"} for i in range(2)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def build(**changes) -> RunConfig:
        data = {
            "name": "r",
            "output_dir": str(tmp_path / "runs"),
            "policy": {"path": str(model)},
            "engine": {"max_model_len": 1024},
            "prompts": {"kind": "jsonl", "path": str(prompts)},
            "feedback": {"source": "self_rewarding"},
        }
        return RunConfig.model_validate(_merge(data, changes))

    return build
