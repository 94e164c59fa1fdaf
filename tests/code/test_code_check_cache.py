"""Problem checks are remembered across ``rlaif eval-code`` runs (real sandbox, real CLI): a second run
with the same problems checks nothing again and reports the same broken problems; an edited problem,
other limits or a torn cache line are checked again; inconclusive checks are never stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rlaif.cli import main
from rlaif.code import check_cache
from rlaif.code.check_cache import CheckCache, default_dir, fingerprint_of, pool_setting, problem_key
from rlaif.code.problems import load_problems
from rlaif.sandbox import Limits

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n"


def _he(task_id: str, test: str = TEST, solution: str = "    return a + b\n") -> dict:
    return {"task_id": task_id, "prompt": PROMPT, "canonical_solution": solution, "test": test,
            "entry_point": "add"}  # fmt: skip


PROBLEMS = [
    _he("Good/0"),
    _he("Good/1"),
    _he("NoAssert/2", test="def check(candidate):\n    candidate(2, 3)\n"),
]


def _eval(capsys, tmp_path, problems, *extra):
    ppath = tmp_path / "problems.jsonl"
    ppath.write_text("".join(json.dumps(p) + "\n" for p in problems))
    samples = tmp_path / "samples.jsonl"
    rows = [
        {"task_id": p["task_id"], "completion": c}
        for p in problems
        for c in ("    return a + b\n", "    return 0\n")
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "results.jsonl"
    code = main(["eval-code", "--problems", str(ppath), "--samples", str(samples), "--k", "1", "--out", str(out),
                 "--no-progress", "--workers", "2", *extra])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out), [json.loads(x) for x in out.read_text().splitlines()]


def test_a_second_run_checks_nothing_again_and_finds_the_same(capsys, tmp_path, monkeypatch):
    first, rows1 = _eval(capsys, tmp_path, PROBLEMS)
    assert first["problem_checks"] == {"run": 3, "from_cache": 0}
    assert set(first["bad_problem_reasons"]) == {"NoAssert/2"}
    files = list(default_dir().glob("*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 3  # 2 sound, 1 broken
    second, rows2 = _eval(capsys, tmp_path, PROBLEMS)
    assert second["problem_checks"] == {"run": 0, "from_cache": 3}
    assert second["bad_problem_reasons"] == first["bad_problem_reasons"]
    assert [(r["task_id"], r["status"]) for r in rows2] == [(r["task_id"], r["status"]) for r in rows1]
    assert second["pass@1"] == first["pass@1"] == 0.5
    # an edited problem is checked again (now broken: its test expects the wrong sum), the rest is not
    edited = [PROBLEMS[0], _he("Good/1", test=TEST.replace("== 5", "== 6")), PROBLEMS[2]]
    third, _ = _eval(capsys, tmp_path, edited)
    assert third["problem_checks"] == {"run": 1, "from_cache": 2}
    assert set(third["bad_problem_reasons"]) == {"Good/1", "NoAssert/2"}
    # other limits are another setting: everything is checked again
    fourth, _ = _eval(capsys, tmp_path, PROBLEMS, "--timeout", "2.5")
    assert fourth["problem_checks"] == {"run": 3, "from_cache": 0}
    # turned off: checked again, and nothing is written
    before = files[0].read_text()
    off, _ = _eval(capsys, tmp_path, PROBLEMS, "--no-check-cache")
    assert off["problem_checks"] == {"run": 3, "from_cache": 0} and files[0].read_text() == before
    assert set(off["bad_problem_reasons"]) == {"NoAssert/2"}


def test_inconclusive_checks_are_not_stored_and_torn_lines_are_ignored(capsys, tmp_path):
    looping = _he("Loops/0", solution="    while True:\n        pass\n")  # the reference times out
    summary, _ = _eval(capsys, tmp_path, [looping, PROBLEMS[0]], "--timeout", "0.3")
    assert summary["problem_checks"] == {"run": 2, "from_cache": 0} and "bad_problems" not in summary
    (cache_file,) = default_dir().glob("*.jsonl")
    assert len(cache_file.read_text().splitlines()) == 1  # only Good/0
    with cache_file.open("a") as fh:
        fh.write('{"key": "torn')  # a write cut short: ignored, never an error
    again, _ = _eval(capsys, tmp_path, [looping, PROBLEMS[0]], "--timeout", "0.3")
    assert again["problem_checks"] == {"run": 1, "from_cache": 1}


def test_the_key_covers_the_problem_and_the_limits_not_the_computed_outputs(tmp_path, assets):
    (p,) = load_problems(assets / "humaneval_mini.jsonl")[:1]

    class FakePool:  # only its settings are read
        limits, isolation = Limits(), {"userns": True, "uid": 5}

    setting = pool_setting(FakePool)
    key = problem_key(p, setting)
    assert problem_key(p.model_copy(update={"metadata": {"expected": [1]}}), setting) == key
    assert problem_key(p.model_copy(update={"test_code": p.test_code + "\n"}), setting) != key
    assert problem_key(p.model_copy(update={"metadata": {"source": "x"}}), setting) != key
    FakePool.limits = Limits(memory_mb=512)
    assert problem_key(p, pool_setting(FakePool)) != key
    cache = CheckCache(tmp_path / "c")
    assert cache.lookup(key) == (False, None)
    cache.store([(key, "broken because")])
    assert CheckCache(tmp_path / "c").lookup(key) == (True, "broken because")


def test_the_folder_follows_the_environment_and_without_a_home_nothing_is_remembered(monkeypatch, tmp_path):
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path / "r"))
    assert default_dir() == tmp_path / "r" / "problem-checks"
    monkeypatch.delenv("RLAIF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_dir() == tmp_path / "x" / "rlaif" / "problem-checks"
    monkeypatch.delenv("XDG_CACHE_HOME")

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr("pathlib.Path.home", no_home)
    assert default_dir() is None
    cache = CheckCache()
    cache.store([("k", None)])
    assert cache.lookup("k") == (False, None) and cache.stored == 0


def test_the_source_fingerprint_is_read_once_per_process_and_follows_every_checker_source(
    tmp_path, monkeypatch
):
    package = Path(check_cache.__file__).resolve().parents[1]
    copy = tmp_path / "rlaif"
    shutil.copytree(package / "sandbox", copy / "sandbox", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(package / "code", copy / "code", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(package / "records.py", copy / "records.py")
    original = fingerprint_of(copy)
    assert original == fingerprint_of(package)  # only these sources count
    (copy / "judges").mkdir()
    (copy / "judges" / "other.py").write_text("x = 1\n")
    assert fingerprint_of(copy) == original  # a source that does not build or judge a check
    for source in ("sandbox/runner.py", "code/validate.py", "records.py"):
        path = copy / source
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert fingerprint_of(copy) != original, source
        path.write_text(text)
        assert fingerprint_of(copy) == original, source

    reads = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real_read(self))
    check_cache.code_fingerprint.cache_clear()
    assert CheckCache(tmp_path / "c").path.name == f"{original}.jsonl"
    n_sources = len(reads)
    assert n_sources > 10  # every sandbox and code module and records.py were read ...
    CheckCache(tmp_path / "c")
    CheckCache(tmp_path / "d")
    assert len(reads) == n_sources  # ... once: later caches in the process reuse the fingerprint
