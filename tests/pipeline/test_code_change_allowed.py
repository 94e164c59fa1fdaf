"""``rlaif run --allow-code-change``: when rlaif's files change under a run, the run warns and goes on
instead of stopping, and still records the change (events, ``status.json``, the manifests of the
stages made after it, the report), so its provenance stays honest; a later run on the new code names
those stages as made by other code.

End to end, as the code-version tests do: a real ``rlaif run`` in a subprocess whose ``rlaif`` is a
COPY of this checkout's package, first on ``PYTHONPATH``, edited after the build stage by the test hook
``code_change_run.py`` (no vLLM engine: the run's evaluation measures nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

from package_copy import copy_package, run_python

from rlaif.pipeline.report_view import _code_changed

REPO = Path(__file__).resolve().parents[2]
HOOK = Path(__file__).resolve().parent / "code_change_run.py"
FILES = ["+rlaif/added_by_pull.py", "rlaif/pairs.py"]
WARNING = (
    "warning: rlaif's code changed under this run (+rlaif/added_by_pull.py, rlaif/pairs.py): going on "
    "with round_0/eval (--allow-code-change), so this process may mix two code versions; the change is "
    "recorded in the events, status.json and the manifests of the stages made from here on"
)


def manifest(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / stage / "manifest.json").read_text())


def test_a_run_told_to_go_on_warns_records_the_change_and_finishes(tmp_path, run_config):
    code = copy_package(tmp_path)
    data = run_config.base() | {"name": "built", "rounds": 0}
    data["policy"] = {"path": str(tmp_path / "built_model"), "build_tiny": {"vocab_size": 300}}
    config = run_config.write(data, "built.yaml")
    run_dir = tmp_path / "runs" / "built"

    first = run_python([str(HOOK), str(config), "--allow-code-change"], code, tmp_path / "first.log")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Traceback" not in first.stderr and not [
        x for x in first.stderr.splitlines() if x.startswith("error:")
    ]
    assert [x for x in first.stderr.splitlines() if x.startswith("warning: rlaif's code")] == [WARNING]
    assert json.loads(first.stdout)["executed"] == ["prepare/policy", "round_0/eval"]

    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "ok"
    started = manifest(run_dir, "prepare/policy")["code_version"]  # made before the change
    assert "changes" not in started
    (change,) = status["code_version"]["changes"]
    assert status["code_version"] == started | {"changes": [change]}  # the digest: the code it started on
    assert change["before_stage"] == "round_0/eval" and change["files"] == FILES
    assert change["digest"] != started["digest"]
    assert manifest(run_dir, "round_0/eval")["code_version"] == status["code_version"]
    events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    (event,) = [e for e in events if e["event"] == "code_changed"]
    assert (event["stage"], event["files"], event["allowed"]) == ("round_0/eval", FILES, True)
    assert event["reason"] == WARNING.removeprefix("warning: ")
    page = " ".join((run_dir / "report.html").read_text().split())
    line = f"before round_0/eval: {', '.join(FILES)} (now code {change['digest']}) (went on: --allow-code-change)"
    assert line in page and _code_changed(status["code_version"]) == line

    # the next run, on the new code, finds nothing changed under it, and names both stages as made
    # by other code: the evaluation ran in a process that had started on the old one
    second = run_python(["-m", "rlaif.cli", "run", str(config)], code, tmp_path / "second.log")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "warning: rlaif's code" not in second.stderr
    made_by = f"(made by other code: rlaif {started['version']}, code {started['digest']})"
    for stage in ("prepare/policy", "round_0/eval"):
        assert f"[{stage}] up to date, skipped {made_by}" in second.stderr
    new = json.loads((run_dir / "status.json").read_text())["code_version"]
    assert new["digest"] == change["digest"] and "changes" not in new


def test_without_the_flag_the_change_still_stops_the_run(tmp_path, run_config):
    """The opt-out is opt-in: the same run without it stops before the evaluation (exit 2)."""
    code = copy_package(tmp_path)
    data = run_config.base() | {"name": "built", "rounds": 0}
    data["policy"] = {"path": str(tmp_path / "built_model"), "build_tiny": {"vocab_size": 300}}
    config = run_config.write(data, "built.yaml")
    proc = run_python([str(HOOK), str(config)], code, tmp_path / "first.log")
    assert proc.returncode == 2 and "warning: rlaif's code" not in proc.stderr
    assert [x for x in proc.stderr.splitlines() if x.startswith("error:")][0].startswith(
        "error: rlaif's code changed since this run started (+rlaif/added_by_pull.py, rlaif/pairs.py): "
        "stopped before round_0/eval"
    )
    assert not (tmp_path / "runs" / "built" / "round_0" / "eval").exists()
