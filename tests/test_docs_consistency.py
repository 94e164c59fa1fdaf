"""Numbers quoted in two places agree: the demo's time and memory in the README and in the comment at
the top of ``pipelines/demo.yaml`` (the file users open first)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_yaml_quotes_the_readme_time_and_memory():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    measured = re.search(
        r"`make demo` on a fresh clone took (\d+ min \d+ s) in all.*?peak RSS ([\d.]+ GB)", readme, re.S
    )
    assert measured, "the README's demo section no longer states the measured time and peak RSS"
    header = "".join(line for line in (REPO / "pipelines" / "demo.yaml").open() if line.startswith("#"))
    header = " ".join(header.replace("#", " ").split())
    for figure in measured.groups():
        assert figure in header, f"pipelines/demo.yaml's comment does not say {figure!r} as the README does"
