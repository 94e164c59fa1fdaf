"""The greedy code pairing (``code_change_vs_*``) and the code drop warning leave out the samples of
broken problems (status ``bad_problem``, ``passed: false``) as pass@k does, and count them.

Logic on hand-made rows, then the same pairing on rows the real sandbox verified: a problem whose own
reference fails its tests is found broken by :meth:`CodeTask.validate`, and its samples are neither
paired as failures nor hidden."""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.code.problems import load_problems
from rlaif.config.health import HealthConfig
from rlaif.engines.base import Sampling
from rlaif.engines.scripted import ScriptedEngine
from rlaif.pipeline.evaluation import _code_change, _code_row
from rlaif.pipeline.manifest import write_manifest
from rlaif.pipeline.result_warnings import find_warnings
from rlaif.pipeline.stage_kinds import PlannedStage
from rlaif.sandbox import Limits, SandboxPool
from rlaif.tasks.code import CodeTask
from rlaif.tasks.metric import pass_at_k_metric

ASSETS = Path(__file__).resolve().parents[1] / "code" / "assets"


def row(problem: str, sample: int, passed: bool, status: str | None = None) -> dict:
    status = status or ("passed" if passed else "failed")
    return {"kind": "code", "id": problem, "sample": sample, "passed": passed, "status": status}


def broken(problem: str, sample: int) -> dict:
    """A broken problem's sample as the evaluation writes it: ``passed`` false, not null."""
    return row(problem, sample, False, "bad_problem")


def test_bad_problem_samples_are_counted_not_paired_as_failures():
    before = [row("a", 0, False), row("a", 1, True), row("b", 0, True), row("b", 1, True)]
    before += [broken("x", 0), broken("x", 1), broken("y", 0), broken("y", 1)]
    after = [row("a", 0, True), row("a", 1, True), row("b", 0, True), row("b", 1, False)]
    after += [broken("x", 0), broken("x", 1), broken("y", 0), broken("y", 1)]
    after += [{"kind": "answer", "id": "a", "sample": 0, "text": "hi", "tokens": 1}]  # other kinds: ignored
    change = _code_change(before, after)
    assert change == {
        "paired": 4,  # was 8: the four broken samples were paired as fail -> fail
        "gained": 1,
        "lost": 1,
        "sign_test_p": 1.0,
        "unmatched": 0,
        "bad_problem_samples": 4,
    }


def test_a_problem_broken_in_one_evaluation_only_is_left_out_of_both():
    """A problem that passed before and is found broken after (its checks changed) is no loss of the
    policy, and no unmatched sample either: it is counted as broken."""
    before = [row("a", 0, True), row("z", 0, True), row("z", 1, True)]
    after = [row("a", 0, True), broken("z", 0), broken("z", 1)]
    change = _code_change(before, after)
    assert (change["paired"], change["lost"], change["unmatched"], change["bad_problem_samples"]) == (
        1,
        0,
        0,
        2,
    )
    # rows written before the status was kept (passed: null) are still left out, uncounted
    old = [row("a", 0, True), {"kind": "code", "id": "z", "sample": 0, "passed": None}]
    assert _code_change(old, after)["paired"] == 1


def _stage(run_dir: Path, name: str, rows: list[dict]) -> PlannedStage:
    d = run_dir / name
    d.mkdir(parents=True)
    summary = {"metrics": {}}
    write_manifest(
        d, {"stage": name, "config_hash": "x", "input_hashes": {}, "wall_s": 1.0, "summary": summary}
    )
    (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return PlannedStage(name, "eval", 0)


def test_the_drop_warning_does_not_count_newly_broken_problems_as_newly_failing(tmp_path):
    """Eight problems passing in round 0, found broken in round 1: with ``passed: false`` paired as
    failures this was 16 newly failing samples (p = 3e-5), a drop warning about no change of the policy."""
    before = _stage(tmp_path, "round_0/eval", [row(f"t{i}", k, True) for i in range(8) for k in range(2)])
    after = _stage(tmp_path, "round_1/eval", [broken(f"t{i}", k) for i in range(8) for k in range(2)])
    assert find_warnings(tmp_path, [before, after], HealthConfig()) == []
    # the same rows as real failures are a drop: the check itself still fires
    failed = _stage(tmp_path, "round_2/eval", [row(f"t{i}", k, False) for i in range(8) for k in range(2)])
    found = find_warnings(tmp_path, [before, failed], HealthConfig())
    assert [w["check"] for w in found] == ["drop", "drop"] and "16 newly fail" in found[0]["message"]


def test_sandbox_verified_rows_of_a_broken_problem_are_left_out_of_the_pairing():
    """Rows as the evaluation writes them (:func:`_code_row`) from real sandbox verdicts: the good
    problem's samples are paired, the broken problem's (its reference fails its own test) are counted."""
    good = load_problems(ASSETS / "mbpp_mini.jsonl")[0]
    bad = good.model_copy(update={"task_id": "broken", "tests": ["assert remove_Occ('ab', 'a') == 'xyz'"]})
    answers = {0: good.reference_solution, 1: "def remove_Occ(s, ch):\n    return s\n"}
    engine = ScriptedEngine(lambda conv, i, sampling: f"```python\n{answers[i]}\n```")
    with SandboxPool(workers=2, limits=Limits(timeout_s=20.0, total_timeout_s=60.0)) as pool:
        task = CodeTask([good, bad], pool=pool)
        assert set(task.validate()) == {"broken"}
        checked, summary = pass_at_k_metric(task, [1]).measure(engine, [good, bad], Sampling(n=2))
    rows = [_code_row("code", c) for c in checked]
    assert [(r["id"], r["status"], r["passed"]) for r in rows] == [
        (good.task_id, "passed", True), (good.task_id, "failed", False),
        ("broken", "bad_problem", False), ("broken", "bad_problem", False),
    ]  # fmt: skip
    assert summary["problems"] == 1 and summary["bad_problems"] == 1  # pass@k leaves it out too
    flipped = [dict(r, passed=not r["passed"]) if r["id"] == good.task_id else r for r in rows]
    change = _code_change(rows, flipped)
    assert (change["paired"], change["gained"], change["lost"], change["bad_problem_samples"]) == (2, 1, 1, 2)
