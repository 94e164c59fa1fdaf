"""``sandbox.isolation`` (run config) and ``rlaif eval-code --isolation``: the explicit choice of what
happens where nothing can isolate untrusted code, validated with one line. The real refusal and
opt-out as a non-root user are in ``test_sandbox_unprivileged.py``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rlaif.cli import main
from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError
from rlaif.pipeline import context
from rlaif.sandbox.policy import ENV_VAR, allow_unisolated, opted_out

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pipelines" / "demo.yaml"


def test_the_values_map_to_the_pools_choice(monkeypatch):
    assert allow_unisolated(None) is None and allow_unisolated("none") is True
    assert allow_unisolated("required") is False
    with pytest.raises(ValueError, match="isolation must be one of required, none, got 'off'"):
        allow_unisolated("off")
    monkeypatch.setenv(ENV_VAR, "none")  # the explicit value wins over the environment
    assert opted_out(allow_unisolated(None)) and not opted_out(allow_unisolated("required"))


def test_a_bad_config_value_is_one_line_naming_the_key():
    with pytest.raises(ConfigError) as err:
        load_run_config(DEMO, ["sandbox.isolation=off"])
    message = str(err.value)
    assert "sandbox.isolation" in message and "'required' or 'none'" in message and "\n" not in message
    assert load_run_config(DEMO).sandbox.isolation is None
    assert load_run_config(DEMO, ["sandbox.isolation=none"]).sandbox.isolation == "none"


@pytest.mark.parametrize(("value", "allow"), [(None, None), ("none", True), ("required", False)])
def test_the_run_hands_the_key_to_its_pool(monkeypatch, tmp_path, value, allow):
    seen = {}
    monkeypatch.setattr(context, "SandboxPool", lambda **kw: seen.update(kw) or "pool")
    overrides = [] if value is None else [f"sandbox.isolation={value}"]
    cfg = load_run_config(DEMO, overrides)
    ctx = context.RunContext(run=SimpleNamespace(config=cfg), run_dir=tmp_path, policy=None)
    assert ctx.sandbox() == "pool" and seen == {"allow_unisolated": allow}


def test_a_bad_cli_value_is_one_line(capsys, tmp_path):
    code = main(["eval-code", "--problems", str(tmp_path / "p.jsonl"), "--samples", str(tmp_path / "s.jsonl"),
                 "--isolation", "off"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: --isolation: isolation must be one of required, none, got 'off'"
    code = main(["eval-code", "--problems", "p", "--samples", "s", "--isolation", "required",
                 "--unsafe-no-isolation"])  # fmt: skip
    assert code == 2 and "contradicts" in capsys.readouterr().err
