"""engine.during_training: the run's own vLLM engines are closed before a training stage (default) or
kept (``keep``), and started again when a later stage needs them.

The logic test uses stand-in engines; the real test runs the instruction loop on the tiny model with
the run's own vLLM engine and the shipped settings (full fine-tuning, candidates scored by the policy)
and reads the event log: the engine is started for round 0's evaluation, released before round 1's
training, and started again (on the trained model) for round 1's evaluation. The same run shows that
the engines a full-fine-tuning run starts for itself serve no LoRA, so the policy can score its
candidates (vLLM refuses text scoring on an engine serving LoRA)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from instruction_round import PIPELINE, engine_events, one_round, run_events

from rlaif.config.loading import load_run_config
from rlaif.pipeline.context import Policy, RunContext
from rlaif.pipeline.resolve import ResolvedRun
from rlaif.pipeline.runner import Runner
from rlaif.records import PreferencePair, read_jsonl


class StandIn:
    model_name = "stand-in"

    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


def _context(tmp_path, run_config, **changes) -> RunContext:
    cfg = run_config(**changes)
    run = ResolvedRun(config=cfg, blocks={}, user_keys={})
    return RunContext(run=run, run_dir=tmp_path / "run", policy=Policy(Path(cfg.policy.path)))


@pytest.mark.parametrize("mode", ["close", "keep"])
def test_release_closes_the_runs_own_engines_only_when_asked(tmp_path, run_config, mode):
    ctx = _context(tmp_path, run_config, engine={"during_training": mode})
    policy, judge = StandIn(), StandIn()
    ctx._engine, ctx._engine_model, ctx._judge_engine = policy, ctx.policy.path, judge
    ctx.release_for_training()
    released = mode == "close"
    assert policy.closed is released and judge.closed is released
    assert (ctx._engine is None) is released and (ctx._judge_engine is None) is released
    events = [json.loads(x) for x in ctx.events_path.read_text().splitlines()] if released else []
    assert [e["event"] for e in events] == (["engines_released"] if released else [])


def test_an_engine_someone_else_started_is_never_closed(tmp_path, run_config):
    ctx = _context(tmp_path, run_config)
    shared = StandIn()
    ctx.adopt_engine(shared, ctx.policy.path)
    ctx.release_for_training()
    assert not shared.closed and ctx._engine is shared and not ctx.events_path.exists()


def test_the_run_closes_its_engine_for_training_and_starts_it_again(tmp_path, tiny_model_dir, capsys):
    overrides = one_round(tmp_path, tiny_model_dir, "eval.instructions.prompts.limit=4", "eval.max_tokens=8")
    # two candidates per prompt (the later override wins), scored by the policy's own likelihoods
    cfg = load_run_config(PIPELINE, [*overrides, "feedback.options.num_generations=2"])
    assert cfg.dpo["lora"] is None  # the shipped full fine-tuning
    metrics = Runner(cfg).run()
    events = run_events(cfg.run_dir())
    pairs = read_jsonl(cfg.run_dir() / "round_1" / "feedback" / "pairs.jsonl", PreferencePair)
    assert pairs and all(p.metadata["candidates"]["asked"] == 2 for p in pairs)
    assert all(
        p.chosen == p.metadata["candidates"]["texts"][p.metadata["candidates"]["chosen"]] for p in pairs
    )
    assert metrics["rounds"][1]["instruction_samples"] == 4
    seq = engine_events(cfg.run_dir(), "engine_start", "engines_released", "stage_start")
    trained = str(cfg.run_dir() / "round_1" / "train" / "model")
    assert seq == [
        ("stage_start", "round_0/eval"),
        ("engine_start", str(tiny_model_dir)),
        ("stage_start", "round_1/feedback"),
        ("stage_start", "round_1/pairs"),
        ("engines_released", ["policy"]),
        ("stage_start", "round_1/train"),
        ("stage_start", "round_1/eval"),
        ("engine_start", trained),
    ], seq
    # each start is said on the run's output (vLLM itself is quiet in a run): model, KV cache, then
    # the seconds it took, before the evaluation's first progress line
    err = capsys.readouterr().err.splitlines()
    starts = [i for i, x in enumerate(err) if x.startswith("  starting the policy engine: vLLM on ")]
    ready = [i for i, x in enumerate(err) if re.fullmatch(r"  policy engine ready in \d+ s", x)]
    assert len(starts) == 2 and len(ready) == 2, err
    assert str(tiny_model_dir) in err[starts[0]] and trained in err[starts[1]]
    assert "kv cache 0.25 GiB" in err[starts[0]] and "no LoRA" in err[starts[0]]  # full fine-tuning
    first_eval = next(i for i, x in enumerate(err) if x.startswith("  round_0/eval instructions: 0/4 "))
    assert starts[0] < ready[0] < first_eval, err
    ready_events = [e for e in events if e["event"] == "engine_ready"]
    assert [e["model"] for e in ready_events] == [str(tiny_model_dir), trained]
    assert all(e["seconds"] > 0 for e in ready_events)
