"""The HTML report, rendered by the real CLI (``rlaif report``) from a run directory's manifests, parsed
back: header, status banner, formatted tables (no raw dicts), the win-rate judge and its n, the reward
model's held-out accuracy, and a failed run that looks failed."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from rlaif.pipeline.health import write_status
from rlaif.pipeline.manifest import write_manifest
from rlaif.pipeline.report_view import fmt

sys.path.insert(0, str(Path(__file__).parent))
from report_html import Report, rlaif_report  # noqa: E402

CONFIG = {
    "name": "reported",
    "policy": {"path": "/models/my-policy"},
    "prompts": {"kind": "jsonl", "path": "prompts.jsonl"},
    "feedback": {"source": "self_rewarding"},
    "judge": {"template": "pipeline_judges:length_score"},
    "rounds": 1,
    "final": {"kind": "ppo", "reward": "reward_model"},
    "eval": {"win_rate_prompts": {"kind": "jsonl", "path": "prompts.jsonl"}, "win_rate_judge": "pairwise"},
}


def stage(run_dir: Path, name: str, summary: dict, wall_s: float = 1.5) -> Path:
    d = run_dir / name
    d.mkdir(parents=True, exist_ok=True)
    write_manifest(
        d, {"stage": name, "config_hash": "x", "input_hashes": {}, "wall_s": wall_s, "summary": summary}
    )
    return d


def make_run(tmp_path: Path, status: str, reason: str | None = None) -> Path:
    run_dir = tmp_path / "runs" / "reported"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    write_status(run_dir, "running", config_file="pipelines/my_run.yaml")
    write_status(run_dir, status, "round_1/feedback" if reason else None, reason)
    stage(
        run_dir, "round_0/eval", {"metrics": {"round": 0, "label": "round 0", "mean_response_tokens": 41.25}}
    )
    stage(
        run_dir,
        "round_1/feedback",
        {
            "counts": {
                "prompts_in": 1234,
                "pairs_out": 1000,
                "dropped": 234,
                "judgments": 3702,
                "judgments_invalid": 40,
                "prompts_skipped_malformed": 2,
            },
            "drops": {"tie": 200, "too_few_scored": 34},
            "invalid_reasons": {"no score found (pattern: Score:)": 40},
            "inputs": {"skipped_malformed": 2, "skipped_examples": ["hh.jsonl:668: turns must alternate"]},
        },  # fmt: skip
        wall_s=754.2,
    )
    stage(run_dir, "round_1/pairs", {"counts": {"pairs_in": 1000, "pairs_kept": 950, "pairs_dropped": 50},
                                     "drops": {"length_ratio": 50}, "length": {"mean_ratio": 1.234567}})  # fmt: skip
    train = stage(run_dir, "round_1/train", {"counts": {"steps": 3, "pairs": 950},
                                            "metrics": {"train_loss": 0.693147, "rewards/accuracies": 0.75}})  # fmt: skip
    (train / "metrics.jsonl").write_text(
        "".join(json.dumps({"loss": 0.7 - 0.01 * i}) + "\n" for i in range(3))
    )
    stage(
        run_dir,
        "round_1/eval",
        {"metrics": {"round": 1, "label": "round 1", "mean_response_tokens": 44.5, "win_rate_vs_previous": 0.6125,
                     "win_rate_n": 80, "win_rate_valid": 78, "judge_invalid_rate": 0.0125,
                     "win_rate_judge": "pairwise (pairwise, pairwise.j2)", "win_rate_judge_model": "my-policy+adapter"}},
    )  # fmt: skip
    stage(run_dir, "final/train", {"counts": {"steps": 2}, "metrics": {"kl": 0.0123},
                                   "reward_model": {"heldout_accuracy": 0.8125, "heldout_pairs": 16, "train_pairs": 934}})  # fmt: skip
    return run_dir


def render(run_dir: Path) -> Report:
    res = rlaif_report(run_dir)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("report.html")
    return Report((run_dir / "report.html").read_text())


def test_report_has_header_status_and_formatted_tables(tmp_path):
    page = render(make_run(tmp_path, "ok"))
    header = page.text_of("status")
    assert page.by_id["status"]["attrs"]["data-status"] == "ok" and "Status: ok" in header
    html = (tmp_path / "runs" / "reported" / "report.html").read_text()
    for expected in ("/models/my-policy", "pipelines/my_run.yaml", "pipeline_judges:length_score", "UTC"):
        assert expected in html, expected
    rounds = page.tables["rounds"]
    assert rounds[0][0] == "round" and [r[0] for r in rounds[1:]] == ["round 0", "round 1"]
    assert page.column("rounds", "win rate vs previous") == ["\u2013", "61.3%"]
    assert page.column("rounds", "win-rate prompts (n)") == ["\u2013", "80"]
    assert page.column("rounds", "judge invalid rate") == ["\u2013", "1.2%"]
    note = " ".join(html.split())
    assert (
        "judged by pairwise (pairwise, pairwise.j2) on my-policy+adapter" in note
        and "n=80 (78 valid)" in note
    )
    fb = page.tables["feedback"]
    assert page.column("feedback", "prompts in") == ["1,234"]
    assert page.column("feedback", "pairs made") == ["1,000"]
    assert page.column("feedback", "malformed prompts skipped") == ["2"]
    assert "hh.jsonl:668" in note and len(fb) == 2
    # pairs and dropped prompts are different units: separate tables
    assert not {"dropped", "drops by reason"} & set(fb[0])
    assert page.column("feedback_dropped", "dropped") == ["234"]
    assert page.column("feedback_dropped", "drops by reason") == ["tie: 200 too_few_scored: 34"]
    assert "no score found" in page.column("feedback_dropped", "commonest invalid judgments")[0]
    assert page.column("pairs", "chosen/rejected length") == ["1.235"]
    assert page.column("training", "loss") == ["0.6931", "\u2013"]
    assert page.column("training", "reward accuracy") == ["75.0%", "\u2013"]
    assert page.column("reward_model", "held-out accuracy") == ["81.2%"]
    assert page.column("reward_model", "held-out pairs") == ["16"]
    assert ["round_1/feedback", "12 min 34 s"] in page.tables["timings"]
    # tables, not raw dicts
    assert "{'" not in html and '{"' not in html
    assert (tmp_path / "runs" / "reported" / "training.png").stat().st_size > 5000
    assert 'alt="training.png"' in html and len(page.images) == 3  # per round, pairs, training
    # the judge line says what the judge is for
    assert "pipeline_judges:length_score on the policy (for feedback.source=self_rewarding" in note
    assert not page.title.startswith("FAILED")


def test_report_is_one_self_contained_file(tmp_path):
    """Plots are embedded (base64 PNG); nothing in the page refers to a file beside it."""
    run_dir = make_run(tmp_path, "ok")
    page = render(run_dir)
    html = (run_dir / "report.html").read_text()
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html, flags=re.I)
    assert refs and all(r.startswith("data:") for r in refs), [r[:40] for r in refs]
    # the page still renders with the PNG files gone: moved alone, it loses nothing
    moved = tmp_path / "elsewhere.html"
    moved.write_text(html)
    for png in run_dir.glob("*.png"):
        png.unlink()
    assert Report(moved.read_text()).images == page.images


def test_a_run_without_a_judge_has_no_judge_line(tmp_path):
    run_dir = make_run(tmp_path, "ok")
    config = dict(CONFIG, feedback={"source": "rlaif.feedback.instruction_contrast:instruction_contrast"})
    config = {k: v for k, v in config.items() if k not in ("eval", "judge")} | {"final": {"kind": "none"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    page = render(run_dir)
    html = (run_dir / "report.html").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["judge_uses"] == []
    assert "<dt>judge</dt>" not in html and "built-in defaults" not in html
    assert "<dt>feedback</dt>" in html and page.by_id["status"]["attrs"]["data-status"] == "ok"


def test_failed_run_looks_failed(tmp_path):
    reason = "3702 of 3702 judgments invalid (100% > health.max_judge_invalid_rate 0.5)"
    page = render(make_run(tmp_path, "failed", reason))
    assert page.by_id["status"]["attrs"]["data-status"] == "failed"
    assert "FAILED at round_1/feedback" in page.text_of("status") and reason in page.text_of("status")
    assert page.body_class == "failed" and page.title.startswith("FAILED")


def test_incomplete_run_says_so(tmp_path):
    run_dir = make_run(tmp_path, "running")
    page = render(run_dir)
    assert page.by_id["status"]["attrs"]["data-status"] == "running"
    assert "incomplete" in page.text_of("status")


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("pass@1", 0.4478, "44.8%"),
        ("pairs_out", 12345, "12,345"),
        ("mean_response_tokens", 41.256, "41.26"),
        ("win_rate_vs_previous", None, "\u2013"),
        ("loss", 123456.7, "123,457"),
        ("anything", True, "yes"),
    ],
)
def test_number_formatting(key, value, text):
    assert fmt(key, value) == text


def test_model_output_is_escaped(tmp_path):
    run_dir = make_run(tmp_path, "ok")
    stage(run_dir, "round_1/pairs", {"counts": {"pairs_in": 1, "pairs_kept": 1, "pairs_dropped": 0},
                                     "examples": [{"prompt": [{"role": "user", "content": "hi"}],
                                                   "chosen": "<script>alert(1)</script>", "rejected": "no"}]})  # fmt: skip
    render(run_dir)
    html = (run_dir / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
