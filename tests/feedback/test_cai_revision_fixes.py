"""benchmarks/cai_revision_fixes.py: revision fix counts and RL-CAI label agreement, checked by code;
the shipped instruction constitution files load; a bad input file is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark


def _script():
    return load_benchmark("cai_revision_fixes")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _run(tmp_path: Path) -> Path:
    prompts = [
        {"id": "p1", "prompt": "x", "instructions": [{"kind": "no_commas", "value": None}]},
        {"id": "p2", "prompt": "x", "instructions": [{"kind": "lowercase", "value": None}]},
        {"id": "p3", "prompt": "x", "instructions": [{"kind": "no_commas", "value": None}]},
        {"id": "p4", "prompt": "x", "instructions": []},
    ]
    _write(tmp_path / "prompts.jsonl", prompts)

    def sft(pid, original, revised):
        return {
            "id": f"s-{pid}",
            "completion": revised,
            "metadata": {"prompt_id": pid, "initial_response": original},
        }

    _write(
        tmp_path / "run" / "sft" / "feedback" / "sft.jsonl",
        [
            sft("p1", "a, b", "a b"),  # fixed
            sft("p2", "all lower", "Not Lower"),  # broken
            sft("p3", "a, b", "c, d"),  # both fail
            sft("p4", "a", "b"),  # no instructions: unscored
        ],
    )

    def pair(pid, chosen, rejected):
        return {"id": f"q-{pid}", "chosen": chosen, "rejected": rejected, "metadata": {"prompt_id": pid}}

    _write(
        tmp_path / "run" / "round_1" / "feedback" / "pairs.jsonl",
        [
            pair("p1", "a b", "a, b"),
            pair("p3", "a, b", "a b"),
            pair("p2", "x", "y"),
            pair("p1", "a b", "c d"),
        ],
    )
    return tmp_path


def test_counts_fixes_breaks_and_label_agreement(tmp_path, capsys):
    base = _run(tmp_path)
    assert _script().main([str(base / "run"), "--prompts", str(base / "prompts.jsonl")]) == 0
    report = json.loads(capsys.readouterr().out)
    rev = report["sl_cai_revisions"]
    counts = {k: rev[k] for k in ("fixed", "broken", "both_fail", "both_pass", "unscored")}
    assert counts == {"fixed": 1, "broken": 1, "both_fail": 1, "both_pass": 0, "unscored": 1}
    assert rev["fix_rate"] == 0.5 and rev["break_rate"] == 1.0
    assert rev["original_pass_rate"] == round(1 / 3, 4) and rev["revised_pass_rate"] == round(1 / 3, 4)
    assert rev["fix_rate_by_kind"] == {"no_commas": "1/2"}
    labels = report["round_1_label_agreement"]
    assert (labels["checker_disagrees"], labels["label_agrees"], labels["checker_tied"]) == (2, 1, 2)
    assert labels["agreement"] == 0.5


def test_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    base = _run(tmp_path)
    (base / "run" / "sft" / "feedback" / "sft.jsonl").write_text('{"id": 1}\nnot json\n', encoding="utf-8")
    assert _script().main([str(base / "run"), "--prompts", str(base / "prompts.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sft.jsonl:2: not valid JSON" in err


def test_shipped_instruction_constitution_loads():
    from rlaif.feedback.constitutional import load_critique_revision_pairs
    from rlaif.judges.principle import load_principles

    pairs = load_critique_revision_pairs("cai_critique_revision_instructions")
    assert len(pairs.examples) == 2 and any(p.id == "follow_instructions" for p in pairs.principles)
    assert any(p.id == "follows_instructions" for p in load_principles("cai_principles_instructions"))


def test_revision_preference_rounds_are_counted_per_round_with_their_trained_pairs(tmp_path, capsys):
    """A run whose rounds use the sl_cai source (no SFT stage): each round's revisions are counted, and
    the pairs DPO trained on (after the pairs stage dropped identical ones) are checked on their own."""
    base = _run(tmp_path)
    run = base / "run"
    (run / "sft" / "feedback" / "sft.jsonl").rename(run / "round_1" / "feedback" / "sft.jsonl")
    _write(
        run / "round_1" / "pairs" / "pairs.jsonl",
        [{"id": "q", "chosen": "a b", "rejected": "a, b", "metadata": {"prompt_id": "p1"}}],
    )
    assert _script().main([str(run), "--prompts", str(base / "prompts.jsonl")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "sl_cai_revisions" not in report
    assert (report["round_1_revisions"]["fixed"], report["round_1_revisions"]["broken"]) == (1, 1)
    trained = report["round_1_trained_pairs_label_agreement"]
    assert (trained["pairs"], trained["label_agrees"], trained["agreement"]) == (1, 1, 1.0)


def test_a_run_without_sl_cai_records_is_one_line_and_exit_2(tmp_path, capsys):
    base = _run(tmp_path)
    (base / "run" / "sft" / "feedback" / "sft.jsonl").unlink()
    assert _script().main([str(base / "run"), "--prompts", str(base / "prompts.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no SL-CAI records" in err
