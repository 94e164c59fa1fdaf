"""The README's "Python API" section is a script that works: its ```python blocks run in order, in one
real subprocess, against the tests' tiny local model (``MODEL_DIR`` in the README is replaced by its
folder), as one notebook cell. A block whose first line is ``# file: NAME.py`` is the module the section asks the reader to
save: it is written to the script's folder (which is on ``sys.path``) instead of being run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Python API"
FILE_MARK = re.compile(r"#\s*file:\s*(\S+\.py)\s*$")


def readme_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def python_blocks(section: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)


def test_the_section_has_every_part_the_api_offers():
    blocks = python_blocks(readme_section())
    code = "\n".join(blocks)
    for call in (
        "build_engine(",
        "build_judge(",
        ".score(",
        "run_source(",
        "pairs_to_dataset(",
        "export_pairs(",
        "Runner(",
    ):
        assert call in code, call
    assert any(FILE_MARK.match(b.splitlines()[0]) for b in blocks), "the Python judge's module is not shown"


def test_the_readme_python_api_runs(tmp_path, tiny_model_dir):
    script = []
    for block in python_blocks(readme_section()):
        first, _, rest = block.partition("\n")
        mark = FILE_MARK.match(first)
        if mark:
            (tmp_path / mark.group(1)).write_text(rest, encoding="utf-8")
        else:
            script.append(block.replace("MODEL_DIR", str(tiny_model_dir)))
    (tmp_path / "readme_api.py").write_text("\n".join(script), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}", OMP_NUM_THREADS="1")
    # run as a notebook cell would (no __main__ file: vLLM's spawned processes do not re-run the script;
    # a script file needs the `if __name__ == "__main__":` guard the README asks for)
    as_cell = "exec(compile(open('readme_api.py').read(), 'readme_api.py', 'exec'))"
    out = subprocess.run(
        [sys.executable, "-c", as_cell], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=840
    )
    assert out.returncode == 0, out.stderr[-4000:]
    lines = out.stdout.splitlines()
    assert len([line for line in lines if line.startswith("rubric: ")]) == 2, out.stdout
    assert "python: [10.0, 1.0]" in lines, out.stdout  # "Red." and the ten-word answer
    assert "as a TRL reward function: [10.0, 5.0]" in lines, out.stdout
    assert next(line for line in lines if line.startswith("rlcd: ")).endswith("dropped"), out.stdout
    # the source's pairs in memory, then the run's pairs exported and read back: both TRL-shaped
    assert out.stdout.count("features: ['prompt', 'chosen', 'rejected'") == 2, out.stdout
    assert any(line.startswith("run: ok ") for line in lines), out.stdout
    assert "(MainProcess" not in out.stdout  # vLLM's log went to stderr
