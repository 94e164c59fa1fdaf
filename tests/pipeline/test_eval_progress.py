"""Evaluation generation shows progress: one real evaluation (the instruction loop's round 0 on the
tiny model and the session's vLLM engine) prints a 0/N line when its requests are queued, then requests
done, output tok/s and an ETA on stderr."""

from __future__ import annotations

import re
from pathlib import Path

from rlaif.config.loading import load_run_config
from rlaif.pipeline.progress import engine_progress
from rlaif.pipeline.runner import Runner

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "rlcd_instructions.yaml"


def test_round_0_eval_prints_requests_throughput_and_eta(tmp_path, tiny_model_dir, vllm_engine, capsys):
    overrides = [
        f"output_dir={tmp_path / 'runs'}",
        f"policy.path={tiny_model_dir}",
        "rounds=0",
        "eval.instructions.prompts.limit=6",
        "eval.max_tokens=8",
    ]
    Runner(load_run_config(PIPELINE, overrides), engine=vllm_engine).run()
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("  round_0/eval instructions:")]
    assert lines, "no evaluation progress line"
    # the first line is written when the requests are queued, before any has finished
    assert lines[0].startswith("  round_0/eval instructions: 0/6 requests, "), lines
    assert lines[1].startswith("  round_0/eval instructions: 1/6 requests, ") and "ETA " in lines[1], lines
    assert lines[-1].startswith("  round_0/eval instructions: 6/6 requests, "), lines
    assert all(float(re.search(r"(\d+) tok/s", x).group(1)) > 0 for x in lines[1:]), lines
    assert vllm_engine.progress is False  # switched back off after the evaluation


def test_engine_progress_reaches_through_views_and_skips_engines_without_a_display():
    class Engine:
        progress = None

        def __init__(self):
            self.progress = False

    class View:
        def __init__(self, engine):
            self.engine = engine

        def __getattr__(self, name):
            return getattr(self.engine, name)

    inner = Engine()
    with engine_progress(View(inner), "eval"):
        assert inner.progress is True
    assert inner.progress is False
    server = object()  # no progress display: nothing to switch, nothing raised
    with engine_progress(server, "eval"):
        pass
