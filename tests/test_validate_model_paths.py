"""``rlaif validate`` checks every model and adapter path up front, through the real CLI: a local-looking
path that does not exist, a folder without config.json, a missing judge model folder, a bad adapter and
a mistyped relative path are one ``error:`` line naming the key; a hub name is accepted only where vLLM
alone loads the model (and a note says it will be downloaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_results import fails

from rlaif.pipeline.model_paths import looks_local

REPO = Path(__file__).resolve().parents[1]
HH = REPO / "tests" / "pipeline" / "assets" / "hh_with_malformed.jsonl"


def rlaif(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    full.pop("HF_HUB_OFFLINE", None) if "HF_HUB_OFFLINE" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "rlaif.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
        cwd=cwd,
    )


@pytest.fixture
def work(tmp_path) -> Path:
    model = tmp_path / "models" / "policy"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 1024}))
    (tmp_path / "models" / "empty").mkdir()
    adapter = tmp_path / "adapters" / "a1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    cfg = {
        "name": "paths",
        "policy": {"path": "models/policy"},
        "engine": {"max_model_len": 1024},
        "prompts": {"kind": "hh", "path": str(HH)},
        "feedback": {"source": "self_rewarding"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def test_good_local_paths_pass(work):
    res = rlaif(work, "validate", "run.yaml", "policy.adapter=adapters/a1", "judge.model=./models/policy")
    assert res.returncode == 0, res.stderr
    assert "is not a local folder" not in res.stderr


def test_bad_local_paths_are_one_line_errors_naming_the_key(work):
    fails(
        rlaif(work, "validate", "run.yaml", "policy.path=models/polcy"),
        "'policy.path'",
        "not found: models/polcy",
    )
    fails(rlaif(work, "validate", "run.yaml", "policy.path=models/empty"), "'policy.path'", "no config.json")
    fails(rlaif(work, "validate", "run.yaml", "judge.model=models/judge"),  # found before any stage runs
          "'judge.model'", "model folder not found: models/judge")  # fmt: skip
    fails(rlaif(work, "validate", "run.yaml", "policy.adapter=adapters/a2"), "'policy.adapter'", "not found")
    fails(rlaif(work, "validate", "run.yaml", "policy.adapter=models/policy"), "no adapter_config.json")
    fails(rlaif(work, "validate", "run.yaml", "policy.path=smollm2-135m"), "'policy.path'", "not found")
    fails(rlaif(work, "validate", "run.yaml", "dpo.reference=sft", "dpo.sft_model=models/empty"),
          "'dpo.sft_model'", "no config.json")  # fmt: skip


def test_hub_names_only_where_the_engine_downloads(work):
    fails(  # the policy is trained by DPO: transformers loads it from a local folder only
        rlaif(work, "validate", "run.yaml", "policy.path=SomeOrg/some-model"),
        "'policy.path'", "SomeOrg/some-model is not a local folder", "local folders only",
    )  # fmt: skip
    ok = rlaif(work, "validate", "run.yaml", "judge.model=SomeOrg/judge-model")  # served by vLLM only
    assert ok.returncode == 0, ok.stderr
    assert (
        "note: 'judge.model': SomeOrg/judge-model is not a local folder; taken as a model-hub name"
        in ok.stderr
    )
    fails(
        rlaif(work, "validate", "run.yaml", "judge.model=SomeOrg/judge-model", HF_HUB_OFFLINE="1"),
        "'judge.model'", "HF_HUB_OFFLINE is set",
    )  # fmt: skip
    ok = rlaif(work, "validate", "run.yaml", "rounds=0", "policy.path=SomeOrg/some-model")  # no training
    assert ok.returncode == 0 and "note: 'policy.path'" in ok.stderr, ok.stderr


def test_what_looks_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert looks_local("./x") and looks_local("/x") and looks_local("~/x") and looks_local("a/b/c")
    assert looks_local("name-without-org") and looks_local("models/SmolLM2")  # models/ is a folder here
    assert not looks_local("HuggingFaceTB/SmolLM2-135M-Instruct")
