"""The report's per-round plot draws sampled pass@k (``eval.code_sampled``) beside greedy pass@1: one
panel, one line per k. The panels are checked through :func:`round_panels` (the values each line
draws) and through the PNG the real ``rlaif report`` writes (its ``Description`` text names the panels
and lines; no pixels are compared)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import yaml
from PIL import Image

from rlaif.pipeline.health import write_status
from rlaif.pipeline.manifest import write_manifest
from rlaif.pipeline.report import round_panels

sys.path.insert(0, str(Path(__file__).parent))
from report_html import Report, rlaif_report  # noqa: E402

CONFIG = {
    "name": "sampled",
    "policy": {"path": "/models/my-policy"},
    "prompts": {"kind": "jsonl", "path": "prompts.jsonl"},
    "feedback": {"source": "self_rewarding"},
    "judge": {"template": "pipeline_judges:length_score"},
    "rounds": 1,
    "eval": {
        "code_problems": {"kind": "demo_code", "split": "heldout"},
        "code_sampled": {"samples": 10, "ks": [1, 5, 10]},
    },
}
ROUNDS = [
    {"round": 0, "label": "round 0", "pass@1": 0.4, "sampled_pass@1": 0.31, "sampled_pass@5": 0.55,
     "sampled_pass@10": 0.62, "mean_response_tokens": 80.0},
    {"round": 1, "label": "round 1", "pass@1": 0.45, "sampled_pass@1": 0.36, "sampled_pass@5": 0.6,
     "sampled_pass@10": 0.7, "mean_response_tokens": 77.5},
]  # fmt: skip


def test_sampled_pass_at_k_is_one_panel_after_greedy_pass_at_1_with_a_line_per_k():
    panels = round_panels(ROUNDS)
    assert [title for title, _ in panels] == ["pass@1", "sampled_pass@k", "mean_response_tokens"]
    sampled = dict(panels)["sampled_pass@k"]
    assert list(sampled) == ["k=1", "k=5", "k=10"]  # by k, not by text (10 after 5)
    assert sampled["k=10"] == [0.62, 0.7] and dict(panels)["pass@1"] == {"pass@1": [0.4, 0.45]}


def test_a_round_without_a_figure_draws_a_gap_and_runs_without_sampling_have_no_panel():
    # round 0 measured before code_sampled was set: a gap in every k's line, not a zero
    rounds = [{"round": 0, "pass@1": 0.4}, dict(ROUNDS[1], round=1)]
    sampled = dict(round_panels(rounds))["sampled_pass@k"]
    assert math.isnan(sampled["k=5"][0]) and sampled["k=5"][1] == 0.6
    plain = [{k: v for k, v in r.items() if not k.startswith("sampled_")} for r in ROUNDS]
    assert [title for title, _ in round_panels(plain)] == ["pass@1", "mean_response_tokens"]
    # a k no round measured is no line; a stray non-numeric key is no k
    odd = [{"round": 0, "sampled_pass@2": None, "sampled_pass@x": 0.5, "pass@1": True}]
    assert round_panels(odd) == []


def test_the_report_of_a_sampled_run_has_the_panel_in_its_per_round_plot(tmp_path):
    run_dir = tmp_path / "runs" / "sampled"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    write_status(run_dir, "ok")
    for r in ROUNDS:
        d = run_dir / f"round_{r['round']}" / "eval"
        d.mkdir(parents=True)
        manifest = {
            "stage": f"round_{r['round']}/eval",
            "config_hash": "x",
            "input_hashes": {},
            "wall_s": 1.0,
        }
        write_manifest(d, manifest | {"summary": {"metrics": r}})
    res = rlaif_report(run_dir)
    assert res.returncode == 0, res.stderr
    page = Report((run_dir / "report.html").read_text())
    assert len(page.images) == 1  # per round only: this run has no feedback or training
    with Image.open(run_dir / "per_round.png") as png:
        described = png.text["Description"]
        width = png.size[0]
    assert described == "pass@1; sampled_pass@k (k=1, k=5, k=10); mean_response_tokens"
    assert width >= 3 * 4.2 * 110 - 2  # three panels side by side, not one per k
    assert page.column("rounds", "sampled_pass@10") == ["62.0%", "70.0%"]
