"""A real RL-CAI round whose feedback labeller is the random tiny model: the run's warnings name the
labeller's position consistency exactly when it is under ``health.min_judge_consistency``.

The labeller is Constitutional AI's principle-conditioned multiple choice (``cai_principle_choice``,
P(A)/P(B) from the answer token, asked in both orders), guided so that every answer is readable and
every pair has a consistency verdict. What the random model's consistency comes to is not known in
advance, so the test reads it from the feedback stage's counts and checks the warning against it:
the run itself (default floor 0.6, in-process on the session engine, its last lines on stderr and
``metrics.json``), then the same finished run re-checked through the CLI in this process with the
floor set at the measured value (not under it: no warning) and just above it (a warning). The
re-checks run no stage, so they start no engine. (On the seed-0 tiny model the measured value is
0%: it names the same position in every order, calibrated or not, so the at-the-floor re-check is at
0 and the comparison of a value inside (0, 1) is left to the logic test in test_health_warnings.py.)
The same real pairs then go through ``pairs.options.require_consistent_order``: exactly the pairs whose
two orders disagreed are dropped, as ``position_inconsistent``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rlaif.config.loading import load_run_config
from rlaif.pairs import PairFilterConfig, filter_pairs
from rlaif.pipeline.runner import Runner
from rlaif.records import PreferencePair, read_jsonl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cli_inprocess import rlaif as rlaif_here  # noqa: E402

PROMPTS = 8
CHECK = "[judge_consistency]"


def write_prompts(path: Path) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"Question {i}: how do I keep a plant alive?"} for i in range(PROMPTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:") and CHECK in line]


def consistency_warnings(run_dir: Path) -> list[dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return [w for w in metrics["warnings"] if w["check"] == "judge_consistency"]


def test_feedback_labeller_consistency_is_warned_exactly_below_the_floor(
    tmp_path, run_config, tiny_model_dir, vllm_engine, capsys
):
    data = run_config.tiny(
        tiny_model_dir,
        name="labeller",
        seed=5,
        prompts={"kind": "jsonl", "path": str(write_prompts(tmp_path / "labeller_prompts.jsonl"))},
        feedback={"source": "rl_cai", "options": {"sampling": {"max_tokens": 12}}},
        judge={"template": "cai_principle_choice", "options": {"guided": True}},
    )
    path = run_config.write(data, "labeller.yaml")
    run_dir = tmp_path / "runs" / "labeller"

    Runner(load_run_config(path), engine=vllm_engine).run()
    counts = json.loads((run_dir / "round_1" / "feedback" / "manifest.json").read_text())["summary"]["counts"]
    rate, n = counts.get("position_consistency"), counts["judgments"]
    assert isinstance(rate, float) and n >= PROMPTS, counts  # measured over real two-order verdicts
    assert counts["judgments_invalid"] == 0, counts  # guided: every order was read
    expected = f"round_1/feedback: feedback judge position consistency {100 * rate:.1f}% (n={n} judgments)"

    below = rate < 0.6  # the default floor
    found = consistency_warnings(run_dir)
    assert [w["message"].startswith(expected) for w in found] == ([True] if below else []), (rate, found)
    assert len(warning_lines(capsys.readouterr().err)) == (1 if below else 0)

    assert rate < 1.0, "a random labeller agreed with itself in every swapped pair"
    pairs = read_jsonl(run_dir / "round_1" / "feedback" / "pairs.jsonl", PreferencePair)
    flips = [p.id for p in pairs if p.metadata["consistent"] is False]
    assert pairs and all(p.metadata["consistent"] in (True, False) for p in pairs)  # both orders read
    kept, dropped = filter_pairs(pairs, PairFilterConfig(require_consistent_order=True))
    assert [p.id for p, _ in dropped] == flips and {r for _, r in dropped} <= {"position_inconsistent"}
    assert len(kept) == len(pairs) - len(flips) and flips  # the random labeller flips in some pairs
    for floor, warned in ((rate, False), (min(rate + 0.01, 1.0), True)):
        res = rlaif_here("run", str(path), f"health.min_judge_consistency={floor}")
        assert res.returncode == 0, res.stderr[-3000:]
        lines = warning_lines(res.stderr)
        assert len(lines) == int(warned), (floor, res.stderr[-2000:])
        assert len(consistency_warnings(run_dir)) == int(warned), floor
        if warned:
            assert lines[0].startswith(f"warning: {expected} < health.min_judge_consistency {floor:g}")
