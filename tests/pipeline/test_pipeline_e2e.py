"""A two-round pipeline on the real tiny model, end to end, then a re-run that skips every stage."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlaif.config.loading import load_run_config
from rlaif.pipeline.runner import Runner
from rlaif.records import PreferencePair, read_jsonl


def rlcd_config(run_config, model: Path, shared: Path) -> Path:
    """A two-round RLCD run on the tiny model and MT-Bench prompts, as a YAML file."""
    questions = str(shared / "mt-bench" / "question.jsonl")
    data = run_config.tiny(
        model,
        name="e2e",
        seed=3,
        prompts={"kind": "mtbench", "path": questions, "limit": 6},
        feedback={
            "source": "rlcd",
            "chunk_size": 4,
            "options": {"affixes": "rlcd_helpful", "sampling": {"max_tokens": 12}, "max_retries": 1},
        },
        pairs={"options": {"min_margin": None}},
        rounds=2,
        dpo={"max_steps": 2, "learning_rate": 1e-3},
        # the random tiny model's pairwise judgments are mostly unparseable: this test is about stages,
        # skips and resume, so the health checks are off (tests/pipeline/test_run_health.py covers them)
        eval={
            "win_rate_prompts": {"kind": "mtbench", "path": questions, "limit": 3},
            "win_rate_limit": 3,
            "max_tokens": 8,
        },
    )
    return run_config.write(data)


def test_two_round_rlcd_run_end_to_end_and_resume_skips(run_config, tiny_model_dir, vllm_engine, shared_data):
    path = rlcd_config(run_config, tiny_model_dir, shared_data)
    cfg = load_run_config(path)
    t0 = time.time()
    runner = Runner(cfg, engine=vllm_engine)
    metrics = runner.run()
    first_wall = time.time() - t0
    run_dir = cfg.run_dir()

    # every planned stage ran and left a manifest
    assert runner.executed == [s for s in runner.plan() if s != "report"]
    for stage in runner.executed:
        assert (run_dir / stage / "manifest.json").is_file(), stage
    # feedback accounting: pairs + drops = prompts, and the pairs carry provenance
    for k in (1, 2):
        fb = json.loads((run_dir / f"round_{k}" / "feedback" / "manifest.json").read_text())["summary"]
        assert fb["counts"]["pairs_out"] + fb["counts"]["dropped"] == fb["counts"]["prompts_in"] == 6
        pairs = read_jsonl(run_dir / f"round_{k}" / "feedback" / "pairs.jsonl", PreferencePair)
        assert all(p.source == "rlcd" and p.round == k for p in pairs)
        assert all("affix" in json.dumps(p.metadata) for p in pairs)
    # each round trained an adapter that the next stage served
    adapters = [run_dir / f"round_{k}" / "train" / "adapter" for k in (1, 2)]
    assert all((a / "adapter_config.json").is_file() for a in adapters)
    # pair provenance names the adapter the engine really served: none in round 1, round 1's in round 2
    served = {
        k: {
            p.metadata["adapter"]
            for p in read_jsonl(run_dir / f"round_{k}" / "feedback" / "pairs.jsonl", PreferencePair)
        }
        for k in (1, 2)
    }
    assert served[1] <= {None} and served[2] <= {str(adapters[0])} and served[2]
    # evaluation per round, with a win rate against the previous round from round 1 on
    assert [r["round"] for r in metrics["rounds"]] == [0, 1, 2]
    assert all(r["mean_response_tokens"] > 0 for r in metrics["rounds"])
    assert "win_rate_vs_previous" in metrics["rounds"][1]
    # the report exists and its plots were drawn from metrics.json
    assert (run_dir / "report.html").stat().st_size > 1000
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["rounds"] == metrics["rounds"]
    for png in ("per_round.png", "pairs.png", "training.png"):
        assert (run_dir / png).stat().st_size > 5000, png
    html = (run_dir / "report.html").read_text()
    assert "per_round.png" in html and "Example pairs" in html

    # a second run with the same config skips every stage and changes nothing
    before = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl") if p.name != "metrics.jsonl"}
    t1 = time.time()
    again = Runner(load_run_config(path), engine=vllm_engine)
    again.run()
    second_wall = time.time() - t1
    assert again.executed == [] and set(again.skipped) == set(runner.executed)
    assert {p: p.read_bytes() for p in before} == before
    print(f"first run {first_wall:.1f}s, re-run {second_wall:.2f}s ({100 * second_wall / first_wall:.1f}%)")

    # changing one DPO setting re-runs training from round 1 on, but not round 1's feedback
    changed = Runner(load_run_config(path, ["dpo.max_steps=1"]), engine=vllm_engine)
    changed.run()
    assert "round_1/feedback" in changed.skipped and "round_1/train" in changed.executed
    assert "round_2/feedback" in changed.executed  # new policy: its stale chunks were discarded
    assert changed.summaries["round_2/feedback"].counts["prompts_in"] == 6
