"""The config reference (docs/config.md) is generated from the config models and cannot drift from
them; ``rlaif validate FILE --explain KEY`` reads the same models for the run's own blocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from rlaif.commands.config_reference import (
    Section,
    all_sections,
    explain,
    model_rows,
    render_markdown,
    run_sections,
    section_rows,
)
from rlaif.config import RunConfig
from rlaif.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def rlaif(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "rlaif.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_docs_config_md_is_what_the_models_generate():
    shipped = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert shipped == render_markdown(), "docs/config.md is stale: run `rlaif docs config`"


def test_every_key_of_every_block_is_listed_with_a_meaning():
    from rlaif.feedback.registry import BUILTINS
    from rlaif.judges.spec import KINDS
    from rlaif.train.configs import DPOConfig

    text = render_markdown()
    for name in RunConfig.model_fields:
        if name != "source_file":  # internal, excluded from dumps
            assert f"| `{name}` |" in text
    for name in set(DPOConfig.model_fields) - {"policy", "pairs"}:
        assert f"| `dpo.{name}` |" in text
    for source in BUILTINS:
        assert f"for `source: {source}`" in text
    for kind in KINDS:
        assert f"for `kind: {kind}`" in text
    rows = [row for section in all_sections() for row in section_rows(section)]
    assert len(rows) > 300
    assert [r.key for r in rows if not r.meaning] == []
    assert "| `source_file` |" not in text


class _Inner(BaseModel):
    """Inner block.

    Second paragraph is not shown."""

    depth: int = Field(3, description="How deep.")


class _Outer(BaseModel):
    mode: Literal["a", "b"] = Field("a", description="Which | mode.")
    limit: int | None = Field(None, description="A limit.")
    inner: _Inner | None = None
    must: str = Field(..., description="Required.")
    deeper: _Inner = Field(default_factory=lambda: _Inner(depth=5), description="Built by the parent.")


def test_rows_read_types_defaults_and_nested_blocks_from_the_model():
    rows = {r.key: r for r in model_rows(_Outer, "x.")}
    assert rows["x.mode"].type == '"a" | "b"' and rows["x.mode"].default == '"a"'
    assert rows["x.limit"].type == "int | null" and rows["x.limit"].default == "null"
    assert rows["x.inner"].meaning == "Inner block."
    assert rows["x.inner.depth"].default == "3" and rows["x.inner.depth"].meaning == "How deep."
    assert rows["x.must"].default == "required"
    # a block the parent builds with its own values shows those, not the block class's
    assert rows["x.deeper"].default == "(block defaults)" and rows["x.deeper.depth"].default == "5"
    table = render_markdown([Section("outer", "x.", _Outer)])
    assert "Which \\| mode." in table  # a pipe in a meaning does not break the table


def test_the_shipped_reference_shows_the_defaults_a_source_really_uses():
    rows = {r.key: r.default for s in all_sections() if "rlcf" in s.title for r in section_rows(s)}
    assert rows["feedback.options.repair.sampling.temperature"] == "0.8"
    assert rows["feedback.options.repair.sampling.max_tokens"] == "256"


def test_explain_names_the_key_or_the_nearest_one():
    sections = all_sections()
    (text,) = explain("dpo.beta", sections)
    from rlaif.train.configs import DPOConfig

    assert f"default: {DPOConfig.model_fields['beta'].default}" in text and "type: float" in text
    with pytest.raises(ConfigError, match=r"unknown key 'dpo\.betta' \(did you mean 'dpo\.beta'\?\)"):
        explain("dpo.betta", sections, "run.yaml")


def test_validate_explain_reads_the_runs_own_source_and_judge(tmp_path):
    out = rlaif("validate", "pipelines/self_rewarding.yaml", "--explain", "feedback.options.num_generations")
    assert out.returncode == 0, out.stderr
    assert "source: self_rewarding" in out.stdout and "type: int" in out.stdout
    out = rlaif("validate", "pipelines/self_rewarding.yaml", "--explain", "judge.options.samples")
    assert out.returncode == 0 and "kind: rubric" in out.stdout, out.stderr

    out = rlaif("validate", "pipelines/rlcd_harmless.yaml", "--explain", "feedback.options.num_generations")
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()  # one line, no traceback
    assert "unknown key 'feedback.options.num_generations'" in line and "source: self_rewarding" in line
    out = rlaif("validate", "pipelines/rlcd_harmless.yaml", "--explain", "dpo.betta")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: pipelines/rlcd_harmless.yaml: unknown key 'dpo.betta' (did you mean 'dpo.beta'?)"
    )


def test_validate_explain_needs_no_run_file():
    out = rlaif("validate", "--explain", "dpo.beta")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("dpo.beta (dpo: each DPO round)") and "type: float" in out.stdout
    out = rlaif("validate", "--explain", "feedback.options.num_generations")  # every source that has it
    assert out.returncode == 0 and "source: self_rewarding" in out.stdout, out.stderr
    out = rlaif("validate", "--explain", "dpo.betta")
    assert out.returncode == 2 and out.stderr.strip().endswith("(did you mean 'dpo.beta'?)")
    out = rlaif("validate")
    assert out.returncode == 2 and "needs a run config FILE" in out.stderr


def test_docs_config_writes_and_checks(tmp_path):
    out = tmp_path / "config.md"
    assert rlaif("docs", "config", "--out", str(out)).returncode == 0
    assert out.read_text(encoding="utf-8") == render_markdown()
    assert rlaif("docs", "config", "--out", str(out), "--check").returncode == 0
    out.write_text(out.read_text(encoding="utf-8").replace("DPO beta", "DPO b"), encoding="utf-8")
    stale = rlaif("docs", "config", "--out", str(out), "--check")
    assert stale.returncode == 2 and "out of date" in stale.stderr


def test_the_readme_shrink_command_is_a_valid_run():
    """The README's "shrink a run" command: every override is a key the run takes and its value passes
    the block's validation (no model or data file is needed for that)."""
    import re
    import shlex

    from rlaif.config.loading import load_run_config
    from rlaif.pipeline.compile import resolve

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (command,) = re.findall(
        r"^rlaif run pipelines/\S+ policy\.path=YOUR/MODEL prompts\.limit=.*$", readme, re.M
    )
    _, _, file, *overrides = shlex.split(command)
    run = resolve(load_run_config(REPO / file, overrides))
    assert run.config.prompts.limit == 16 and run.config.rounds == 1
    assert run.block("dpo").max_steps == 2
    assert run.block("feedback.options").sampling.max_tokens == 64
    sections = run_sections(run.config)
    for item in overrides:
        explain(item.split("=", 1)[0], sections)  # each key is documented for this run
