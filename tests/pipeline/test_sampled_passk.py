"""Sampled pass@k beside greedy pass@1 on the real tiny model, its vLLM engine and the real sandbox, on
MBPP test-split problems: a two-round run whose every evaluation reports greedy pass@1 and sampled
pass@k, keeps both kinds of rows apart, and pairs round 1 and round 2 with the start (and round 2 with
round 1) problem by problem, as recomputed here from the rows; and the sampled evaluation alone, whose
per-record seeds give the same samples when repeated and which pairs with an earlier evaluation by id."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from rlaif.config.loading import load_run_config
from rlaif.config.stages import PromptSource, SampledCodeEvalConfig
from rlaif.pipeline.evaluation import _code_sampled_eval
from rlaif.pipeline.runner import Runner
from rlaif.records import iter_json_lines
from rlaif.sandbox import Limits, SandboxPool
from rlaif.tasks.metric import paired_problem_change

KS = [1, 2, 4]


def _mbpp(shared: Path, limit: int) -> dict:
    return {
        "kind": "code",
        "path": str(shared / "mbpp" / "mbpp.jsonl"),
        "id_range": [11, 510],
        "limit": limit,
    }


def _rows(path: Path, kind: str) -> list[dict]:
    return [r for _, r in iter_json_lines(path) if r["kind"] == kind]


def _counts(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """Per problem (samples, passing), recomputed from the rows by hand."""
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["id"], [0, 0])
        out[r["id"]][0] += 1
        out[r["id"]][1] += bool(r["passed"])
    return {k: (n, c) for k, (n, c) in out.items()}


def test_a_two_round_run_reports_greedy_and_sampled_pass_at_k_paired_per_problem(
    run_config, tiny_model_dir, vllm_engine, shared_data
):
    questions = str(shared_data / "mt-bench" / "question.jsonl")
    data = run_config.tiny(
        tiny_model_dir,
        name="sampled",
        seed=5,
        prompts={"kind": "mtbench", "path": questions, "limit": 2},
        feedback={
            "source": "rlcd",
            "chunk_size": 2,
            "options": {"affixes": "rlcd_helpful", "sampling": {"max_tokens": 6}, "max_retries": 1},
        },
        pairs={"options": {"min_margin": None}},
        rounds=2,
        dpo={"max_steps": 1, "learning_rate": 1e-3},
        eval={
            "code_problems": _mbpp(shared_data, 3),
            "code_samples": 1,
            "code_temperature": 0.0,
            "max_tokens": 24,
            "code_sampled": {"samples": 4, "temperature": 0.8, "top_p": 0.95, "ks": KS},
        },
    )
    cfg = load_run_config(run_config.write(data))
    metrics = Runner(cfg, engine=vllm_engine).run()
    run_dir = cfg.run_dir()
    counts = {}
    for r in metrics["rounds"]:
        samples = run_dir / f"round_{r['round']}" / "eval" / "samples.jsonl"
        greedy, sampled = _rows(samples, "code"), _rows(samples, "code_sampled")
        assert len(greedy) == 3 and {g["sample"] for g in greedy} == {0}
        assert len(sampled) == 12 and sorted(s["sample"] for s in sampled) == sorted([0, 1, 2, 3] * 3)
        assert {s["id"] for s in sampled} == {g["id"] for g in greedy}
        assert r["code_problems"] == r["code_sampled_problems"] == 3
        assert sum(r["code_sampled_status"].values()) == 12
        counts[r["round"]] = _counts(sampled)
        assert all(n == 4 for n, _ in counts[r["round"]].values())
        # sampled_pass@1 is the mean per-problem pass fraction; pass@4 of 4 samples: the solved fraction
        per = counts[r["round"]].values()
        assert r["sampled_pass@1"] == round(sum(c / n for n, c in per) / 3, 4)
        assert r["sampled_pass@4"] == round(sum(c > 0 for _, c in per) / 3, 4)
        assert 0 <= r["sampled_pass@1"] <= r["sampled_pass@2"] <= r["sampled_pass@4"] <= 1
        assert r["pass@1"] == round(sum(bool(g["passed"]) for g in greedy) / 3, 4)
        # the sampled rows are not in the length figure: it is the greedy rows' mean
        assert r["mean_response_tokens"] == round(sum(g["tokens"] for g in greedy) / 3, 2)
    first, second, third = metrics["rounds"]
    assert not any(k.startswith("code_sampled_change") for k in first)
    assert "code_sampled_change_vs_previous" not in second  # round 1's previous is the start
    for r, against, before in (
        (second, "start", 0),
        (third, "start", 0),
        (third, "previous", 1),
    ):
        change = r[f"code_sampled_change_vs_{against}"]
        assert change == paired_problem_change(counts[before], counts[r["round"]])
        assert change["paired"] == 3 and change["gained"] + change["lost"] + change["ties"] == 3
        assert change["unmatched"] == change["unequal_samples"] == 0
    # metrics.json and the report carry the figures; the run printed the per-problem line
    assert json.loads((run_dir / "metrics.json").read_text())["rounds"] == metrics["rounds"]
    html = (run_dir / "report.html").read_text()
    assert all(f"sampled_pass@{k}" in html for k in KS)
    assert "held-out code sampled vs the previous policy, per problem" in html


def _ctx(pool, shared: Path):
    ev = SimpleNamespace(
        code_problems=PromptSource(**_mbpp(shared, 2)),
        code_sampled=SampledCodeEvalConfig(samples=3, ks=[1, 3]),
        max_tokens=24,
    )
    return SimpleNamespace(cfg=SimpleNamespace(seed=11, eval=ev), sandbox=lambda: pool, say=print)


def test_the_sampled_evaluation_repeats_its_samples_and_pairs_by_problem_id(
    vllm_engine, shared_data, tmp_path, capsys
):
    with SandboxPool(workers=1, limits=Limits(timeout_s=20.0, total_timeout_s=60.0)) as pool:
        rows: list[dict] = []
        metrics = _code_sampled_eval(_ctx(pool, shared_data), vllm_engine, rows)
        again: list[dict] = []
        # an earlier evaluation: problem 1 passed one more sample than now (unless it passed all three:
        # then one fewer), problem 2 had one sample fewer (not paired), and an extra problem (unmatched)
        ids = sorted({r["id"] for r in rows})
        earlier = [dict(r) for r in rows if not (r["id"] == ids[1] and r["sample"] == 2)]
        first = [r for r in earlier if r["id"] == ids[0]]
        flip = next((r for r in first if not r["passed"]), first[0])
        flip["passed"] = not flip["passed"]
        earlier.append({**earlier[0], "id": "Mbpp/extra"})
        path = tmp_path / "samples.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in earlier))
        paired = _code_sampled_eval(_ctx(pool, shared_data), vllm_engine, again, {"start": path})
    assert [r["text"] for r in again] == [r["text"] for r in rows]  # per-record seeds: the same samples
    assert len({r["text"] for r in rows if r["id"] == ids[0]}) > 1  # sampled: the samples differ
    assert set(metrics) == {
        "sampled_pass@1",
        "sampled_pass@3",
        "code_sampled_problems",
        "code_sampled_status",
    }
    went_down = flip["passed"]  # the earlier evaluation had it passing: now one fewer
    change = paired["code_sampled_change_vs_start"]
    assert change == {
        "paired": 1,
        "gained": int(not went_down),
        "lost": int(went_down),
        "ties": 0,
        "sign_test_p": 1.0,
        "unequal_samples": 1,
        "unmatched": 1,
    }
    out = capsys.readouterr().out
    assert "held-out code, sampled (n=3) vs start: " in out and "1 unequal samples, 1 unmatched" in out
