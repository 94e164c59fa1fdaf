"""A built wheel works on its own: installed outside the source tree, it finds its prompt templates and
pipelines (shipped as package data), and ``rlaif init`` copies them out for editing.

The wheel is built from a copy of the source files (so the checkout stays clean) and installed with
``pip install --no-deps --target`` into a fresh directory; its dependencies come from this test's
environment on ``PYTHONPATH``. Every command runs from a directory outside the source tree, and the
test checks that ``rlaif`` is imported from the installed copy, not from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("rlaif", "prompts", "pipelines", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def _run(args, cwd, env, timeout=300):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    wheels = base / "wheels"
    build = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-v",  # shows the build backend's output, for the no-warnings test
            "-w",
            str(wheels),
            str(src),
        ],
        cwd=base,
        env=os.environ.copy(),
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (base / "build.log").write_text(build.stdout + build.stderr)
    (wheel,) = wheels.glob("rlaif-*.whl")
    target = base / "site"
    install = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        cwd=base,
        env=os.environ.copy(),
    )
    assert install.returncode == 0, install.stderr[-3000:]
    work = base / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RLAIF_PROMPTS_PATH")}
    env["PYTHONPATH"] = str(target)  # only the installed copy; dependencies come from the interpreter
    env["RLAIF_SHARED_DATA"] = str(REPO.parent / "shared" / "data")
    return target, work, env


def rlaif(installed, *args):
    target, work, env = installed
    return _run([sys.executable, "-m", "rlaif.cli", *args], cwd=work, env=env)


def test_the_build_gives_no_setuptools_warnings(installed):
    """``license`` as an SPDX string: the table form makes setuptools >= 77 warn on every install.
    (distutils' lowercase "byte-compiling is disabled" note follows PYTHONDONTWRITEBYTECODE, not us.)"""
    import re

    log = (installed[0].parent / "build.log").read_text()
    assert "Building wheel" in log and "Created wheel" in log, log[-2000:]
    warnings = sorted({m.group(0) for m in re.finditer(r"\b\w*Warning\b.*", log)})
    assert warnings == [], warnings


def test_the_installed_copy_is_the_one_imported(installed):
    target, work, env = installed
    out = _run([sys.executable, "-c", "import rlaif; print(rlaif.__file__)"], cwd=work, env=env)
    assert Path(out.stdout.strip()).is_relative_to(target), out.stdout
    assert (target / "rlaif" / "_prompts" / "pairwise.j2").is_file()
    assert (target / "rlaif" / "_pipelines" / "demo.yaml").is_file()
    assert (target / "rlaif" / "pipeline" / "runner.py").is_file()  # the package without __init__.py


def test_prompts_list_finds_the_shipped_templates(installed):
    target = installed[0]
    result = rlaif(installed, "prompts", "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"search path: {target / 'rlaif' / '_prompts'}"
    names = {line.split()[0] for line in result.stdout.splitlines()[1:] if not line.startswith(" ")}
    assert {"pairwise", "self_rewarding_rubric", "cai_principle_choice"} <= names


def test_validate_a_shipped_pipeline_from_outside_the_tree(installed):
    target = installed[0]
    model = installed[1] / "local_model"  # the GPU examples name a hub model as a placeholder, and
    model.mkdir(exist_ok=True)  # training loads local folders only: validate them with a local one
    (model / "config.json").write_text('{"model_type": "llama", "max_position_embeddings": 32768}')
    for name in ("pipelines/demo.yaml", "pipelines/self_rewarding.yaml", "code_rlcf"):
        args = [] if name == "pipelines/demo.yaml" else [f"policy.path={model}"]
        result = rlaif(installed, "validate", name, *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"ok: {target / 'rlaif' / '_pipelines'}"), result.stdout
    missing = rlaif(installed, "validate", "pipelines/nope.yaml")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == "error: config file not found: pipelines/nope.yaml"


def test_init_copies_prompts_and_pipelines_for_editing(installed):
    work = installed[1]
    result = rlaif(installed, "init", "mine")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mine/prompts", "mine/pipelines"]
    shipped = installed[0] / "rlaif" / "_pipelines" / "demo.yaml"
    assert (work / "mine" / "pipelines" / "demo.yaml").read_text() == shipped.read_text()
    again = rlaif(installed, "init", "mine")
    assert again.returncode == 2 and "pass --force" in again.stderr
    # an edited copy shadows the shipped template of the same name
    edited = work / "mine" / "prompts" / "pairwise.j2"
    edited.write_text(edited.read_text().replace("description:", "description: EDITED", 1))
    _, _, env = installed
    shown = _run(
        [sys.executable, "-m", "rlaif.cli", "prompts", "show", "pairwise"],
        cwd=work,
        env={**env, "RLAIF_PROMPTS_PATH": str(work / "mine" / "prompts")},
    )
    assert shown.returncode == 0, shown.stderr
    assert f"# path: {edited}" in shown.stdout
    assert (work / "mine" / "pipelines" / "demo.yaml").is_file()
    validated = rlaif(installed, "validate", "mine/pipelines/demo.yaml")
    assert validated.returncode == 0, validated.stderr
