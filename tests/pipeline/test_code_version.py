"""A run notices when rlaif's code changes under it (rlaif.pipeline.code_version).

Logic tests fingerprint a small package tree in a temporary folder. The end-to-end tests run a real
``rlaif run`` in a subprocess whose ``rlaif`` is a COPY of this checkout's package, first on
``PYTHONPATH``, and edit that copy mid-run (as a ``git pull`` into an editable install would): the run
must stop before the next stage with one error line and exit 2, keep the finished stages, and the same
command must then resume on the new code and say which stages the old code made. The cheap one (no
vLLM engine) builds its tiny model in a first stage, wrapped by a test hook (code_change_run.py) that
edits the copy after it; the other one runs a one-round pipeline on the tiny model (one vLLM engine,
two prompts, one DPO step) whose plug-in feedback source edits the copy, with no hook in the process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from package_copy import copy_package, run_python

from rlaif.pipeline import code_version
from rlaif.pipeline.code_version import CodeChanged, check_unchanged, fingerprint, other_code

REPO = Path(__file__).resolve().parents[2]


def small_package(root: Path) -> Path:
    """``root/pkg``: five source and asset files, plus compiled and hidden files that must not count."""
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "assets").mkdir()
    (pkg / "__init__.py").write_text('__version__ = "1.0"\n')
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text("B = 2\n")
    (pkg / "sub" / "c.py").write_text("C = 3\n")
    (pkg / "assets" / "page.html.j2").write_text("<p>{{ x }}</p>\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\x00compiled")
    (pkg / ".a.py.swp").write_bytes(b"editor")
    return pkg


def test_fingerprint_follows_sources_and_assets_not_caches(tmp_path):
    pkg = small_package(tmp_path)
    first = fingerprint(pkg, "1.0")
    assert sorted(first.files) == [
        "pkg/__init__.py", "pkg/a.py", "pkg/assets/page.html.j2", "pkg/b.py", "pkg/sub/c.py",
    ]  # fmt: skip
    (pkg / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\x00more")  # an import
    (pkg / "sub" / "__pycache__").mkdir()
    (pkg / "sub" / "__pycache__" / "c.cpython-311.pyc").write_bytes(b"\x00")
    (pkg / "a.py~").write_text("backup")
    assert fingerprint(pkg, "1.0") == first
    (pkg / "assets" / "page.html.j2").write_text("<p>{{ y }}</p>\n")
    assert fingerprint(pkg, "1.0").digest != first.digest
    (pkg / "assets" / "page.html.j2").write_text("<p>{{ x }}</p>\n")  # changed back: the same again
    assert fingerprint(pkg, "1.0") == first
    assert fingerprint(pkg, "1.1").digest != first.digest  # the version counts too


def test_a_renamed_file_changes_the_fingerprint(tmp_path):
    pkg = small_package(tmp_path)
    first = fingerprint(pkg, "1.0")
    (pkg / "b.py").rename(pkg / "b2.py")  # same contents, another module name
    assert fingerprint(pkg, "1.0").digest != first.digest


def test_the_stop_message_names_a_few_files_and_counts_the_rest(tmp_path):
    pkg = small_package(tmp_path)
    started = fingerprint(pkg, "1.0")
    assert check_unchanged(started, "round_1/pairs", pkg) == started
    (pkg / "a.py").write_text("A = 10\n")
    (pkg / "sub" / "c.py").unlink()
    (pkg / "new.py").write_text("N = 1\n")
    (pkg / "b.py").write_text("B = 20\n")
    with pytest.raises(CodeChanged) as caught:
        check_unchanged(started, "round_1/pairs", pkg)
    err = caught.value
    assert err.stage == "round_1/pairs"
    assert err.files == ["pkg/a.py", "pkg/b.py", "+pkg/new.py", "-pkg/sub/c.py"]
    assert str(err).startswith(
        "rlaif's code changed since this run started (pkg/a.py, pkg/b.py, +pkg/new.py and 1 more): "
        "stopped before round_1/pairs"
    )
    assert "the finished stages are kept" in str(err) and "resumes on the new code" in str(err)
    assert "\n" not in str(err)


def test_other_code_names_only_stages_with_another_recorded_digest(tmp_path):
    now = fingerprint(small_package(tmp_path), "1.0")
    same = {"code_version": now.record()}
    assert other_code(same, now) is None
    assert other_code({"stage": "x"}, now) is None  # finished before fingerprints were kept: unknown
    assert other_code(None, now) is None
    old = {"version": "0.9", "digest": "0123456789abcdef", "files": 4}
    assert other_code({"code_version": old}, now) == old


def test_the_report_names_the_stages_made_by_other_code():
    from rlaif.pipeline.report import _code
    from rlaif.pipeline.report_view import _code_lines

    now, old = {"version": "0.2", "digest": "b" * 16, "files": 3}, {"version": "0.1", "digest": "a" * 16}
    code = _code(now, {"round_0/eval": old, "round_1/feedback": now})
    assert code["other"] == ["round_0/eval"]
    assert _code_lines(code) == {
        "code": f"rlaif 0.2 (code {'b' * 16})",
        "other_code": f"round_0/eval (rlaif 0.1, code {'a' * 16})",
    }
    assert _code(None, {"round_0/eval": old})["other"] == []  # a status written before fingerprints
    assert _code_lines({}) == {"code": None, "other_code": None}  # an older metrics.json: no lines


def test_the_running_package_is_fingerprinted(tmp_path):
    """The default root is the imported rlaif, whose ``__init__.py`` and template are tracked."""
    import rlaif

    fp = fingerprint()
    assert code_version.code_dirs() == [Path(rlaif.__file__).resolve().parent, REPO / "prompts"]
    assert fp.version == rlaif.__version__
    tracked = {"rlaif/__init__.py", "rlaif/assets/report.html.j2", "prompts/self_rewarding_rubric.j2"}
    assert tracked <= set(fp.files)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in fp.files)
    copy = tmp_path / "rlaif"
    shutil.copytree(REPO / "rlaif", copy, ignore=shutil.ignore_patterns("__pycache__"))
    package = fingerprint(copy, fp.version)  # the digest depends on contents, not on the location:
    assert package.files == {k: v for k, v in fp.files.items() if k.startswith("rlaif/")}
    assert package.digest == fingerprint(REPO / "rlaif", fp.version).digest


# -- end to end: a real run whose package changes between two stages ---------------------------------

HOOK = Path(__file__).resolve().parent / "code_change_run.py"
ERROR = (
    "error: rlaif's code changed since this run started (+rlaif/added_by_pull.py, rlaif/pairs.py): "
    "stopped before {stage} so that one process does not mix two code versions; the finished stages "
    "are kept, and running the same command again resumes on the new code"
)


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]


def manifest(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / stage / "manifest.json").read_text())


def check_stopped(proc: subprocess.CompletedProcess, run_dir: Path, stage: str, code: Path) -> dict:
    """The run stopped before ``stage`` with one error line, exit 2, and recorded why; returns the code
    record it started with."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        ERROR.format(stage=stage)
    ]
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["status"], status["stage"]) == ("failed", stage)
    assert not (run_dir / stage).exists()  # the stop came before the stage began
    log = events(run_dir)
    assert log[0]["event"] == "run_start" and log[0]["code_version"] == status["code_version"]
    assert log[0]["package"] == str((code / "rlaif").resolve())
    stops = [(e["stage"], e["files"]) for e in log if e["event"] == "code_changed"]
    assert stops == [(stage, ["+rlaif/added_by_pull.py", "rlaif/pairs.py"])]
    return status["code_version"]


def check_resumed(proc, run_dir: Path, old: dict, kept: list[str], redone: list[str]) -> dict:
    """The resumed run finished on the new code, naming the ``kept`` stages as made by the old one."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = json.loads((run_dir / "status.json").read_text())["code_version"]
    assert new["digest"] != old["digest"] and new["files"] == old["files"] + 1
    made_by = f"(made by other code: rlaif {old['version']}, code {old['digest']})"
    for stage in kept:
        assert f"[{stage}] up to date, skipped {made_by}" in proc.stderr
        assert manifest(run_dir, stage)["code_version"] == old
    for stage in redone:
        assert manifest(run_dir, stage)["code_version"] == new, stage
    skipped = [(e["stage"], e.get("other_code")) for e in events(run_dir) if e["event"] == "stage_skipped"]
    assert [s for s in skipped if s[0] in kept] == [(stage, old) for stage in kept]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["code"]["other"] == kept
    page = (run_dir / "report.html").read_text()
    assert f"{kept[-1]} (rlaif {old['version']}, code {old['digest']})" in page
    return new


def test_a_run_stops_when_its_code_changes_after_building_its_model_then_resumes(tmp_path, run_config):
    """No vLLM engine: ``prepare/policy`` builds a tiny model, the hook edits the copy, and the run stops
    before ``round_0/eval``; the same command then evaluates on the new code."""
    code = copy_package(tmp_path)
    data = run_config.base() | {"name": "built", "rounds": 0}
    data["policy"] = {"path": str(tmp_path / "built_model"), "build_tiny": {"vocab_size": 300}}
    config = run_config.write(data, "built.yaml")
    run_dir = tmp_path / "runs" / "built"

    first = run_python([str(HOOK), str(config)], code, tmp_path / "first.log")
    old = check_stopped(first, run_dir, "round_0/eval", code)
    assert manifest(run_dir, "prepare/policy")["code_version"] == old
    second = run_python(["-m", "rlaif.cli", "run", str(config)], code, tmp_path / "second.log")
    check_resumed(second, run_dir, old, ["prepare/policy"], ["round_0/eval"])
    third = run_python(["-m", "rlaif.cli", "run", str(config)], code, tmp_path / "third.log")
    assert third.returncode == 0, third.stderr[-3000:]
    assert [line for line in third.stderr.splitlines() if "up to date" in line] == [
        f"[prepare/policy] up to date, skipped (made by other code: rlaif {old['version']}, code {old['digest']})",
        "[round_0/eval] up to date, skipped",  # made by the code running now: nothing more said
    ]


PLUGIN = '''
"""A feedback source that edits the rlaif package this process runs (once), then makes real pairs."""
from pathlib import Path

import rlaif
from rlaif.feedback.result import finish, new_result, pair_id
from rlaif.records import PreferencePair

MARK = "# edited while a run was going\\n"


def editing_source(prompts, engine, options, context, *, judge_engine=None):
    pkg = Path(rlaif.__file__).resolve().parent
    pairs_py = pkg / "pairs.py"
    if MARK not in pairs_py.read_text():
        pairs_py.write_text(pairs_py.read_text() + MARK)
        (pkg / "added_by_pull.py").write_text("X = 1\\n")
    result = new_result("editing", prompts)
    pairs = []
    for p in prompts:
        chosen, rejected = f"A clear, short answer to {p.id}.", f"no ({p.id})"
        pairs.append(PreferencePair(
            id=pair_id("editing", context.round, p.id, chosen, rejected), prompt=p.messages,
            chosen=chosen, rejected=rejected, source="editing", round=context.round,
        ))
    return finish(result, pairs)
'''


@pytest.mark.slow  # two real runs with a vLLM engine each (~45 s quiet); the default suite runs the
# same stop-and-resume for real in test_a_run_stops_when_its_code_changes_after_building_its_model_then_resumes
def test_a_round_stops_when_a_plugin_changes_the_code_then_resumes_and_trains(
    tmp_path, tiny_model_dir, run_config
):
    """A real round: the feedback stage (vLLM engine up) edits the copy through its plug-in source; the
    run stops before ``round_1/pairs``, and the same command then filters the kept pairs and trains on
    the new code."""
    code = copy_package(tmp_path)
    (code / "editing_plugin.py").write_text(PLUGIN)
    data = run_config.tiny(
        tiny_model_dir, name="code", seed=2, output_dir=str(tmp_path / "runs"),
        feedback={"source": "editing_plugin:editing_source"},
    )  # fmt: skip
    config = run_config.write(data, "code.yaml")
    run_dir = tmp_path / "runs" / "code"
    command = ["-m", "rlaif.cli", "run", str(config)]

    old = check_stopped(run_python(command, code, tmp_path / "first.log"), run_dir, "round_1/pairs", code)
    assert manifest(run_dir, "round_1/feedback")["summary"]["counts"]["pairs_out"] == 2
    second = run_python(command, code, tmp_path / "second.log")
    kept, redone = ["round_0/eval", "round_1/feedback"], ["round_1/pairs", "round_1/train", "round_1/eval"]
    check_resumed(second, run_dir, old, kept, redone)
    train = manifest(run_dir, "round_1/train")["summary"]
    assert not train.get("skipped") and Path(train["outputs"]["adapter"]).is_dir()  # trained on the pairs
