"""Judges on the real tiny vLLM model: counts, probability ranges, and the order combination.

The tiny model has random weights, so most of its answers are unreadable (recorded as invalid);
the custom text-format template ``assets/base_model_pairwise.j2`` ends in "The better response is", after which this model
often puts "A" among its top-20 tokens, so some orders are readable and the combination is checked
on real log-probabilities.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif.engines.base import Sampling
from rlaif.judges import PairwiseJudge, PointwiseJudge, PrincipleJudge, combine_orders
from rlaif.judges.base import render_request
from rlaif.judges.parsers import choice_probabilities
from rlaif.records import Judgment, Message, read_jsonl

pytestmark = pytest.mark.vllm

TEXT_TEMPLATE = Path(__file__).parent / "assets" / "base_model_pairwise.j2"

WORDS = "the cat sat on a mat while dogs ran far away from home and back again".split()


def items(n: int):
    out = []
    for i in range(n):
        question = " ".join(WORDS[i % 7 : i % 7 + 4])
        out.append(
            (
                [Message(role="user", content=f"Question {i}: {question}?")],
                f"It is {WORDS[i % 11]} yes {i}",
                f"Maybe {WORDS[(3 * i) % 13]} no",
            )
        )
    return out


class Counting:
    """Delegates to the real engine and records each generate call's batch size."""

    def __init__(self, engine):
        self._engine = engine
        self.calls: list[tuple[int, Sampling]] = []

    def generate(self, prompts, sampling, adapter=None):
        self.calls.append((len(prompts), sampling))
        return self._engine.generate(prompts, sampling, adapter=adapter)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def check_pairwise_results(results, n_items):
    assert len(results) == n_items
    for r in results:
        assert [j.orders for j in r.judgments] == [["AB"], ["BA"]]
        p_a = []
        for j in r.judgments:
            if j.status == "ok":
                assert set(j.probabilities) == {"A", "B"}
                assert all(0.0 <= p <= 1.0 for p in j.probabilities.values())
                assert math.isclose(sum(j.probabilities.values()), 1.0)
                first = j.probabilities["A"]
                expected = first if j.orders == ["AB"] else 1.0 - first
                assert j.metadata["p_response_a"] == pytest.approx(expected)
                p_a.append(expected)
            else:
                assert j.invalid_reason and j.probabilities is None and j.choice is None
                p_a.append(None)
        prob, consistent = combine_orders(p_a)
        assert r.prob_a == (None if prob is None else pytest.approx(prob))
        assert r.consistent == consistent and r.valid == (prob is not None)
        if r.prob_a is not None:
            assert 0.0 <= r.prob_a <= 1.0


def test_pairwise_with_swap_on_the_real_model(vllm_engine, tmp_path):
    engine = Counting(vllm_engine)
    batch = items(16)
    builtin = PairwiseJudge(engine).compare(batch)
    assert engine.calls == [(32, engine.calls[0][1])]  # every order of every item in one call
    check_pairwise_results(builtin, 16)

    judge = PairwiseJudge(engine, template=TEXT_TEMPLATE)
    results = judge.compare(batch)
    check_pairwise_results(results, 16)
    readable = [j for r in results for j in r.judgments if j.status == "ok"]
    assert readable, "expected some readable orders with this template on the seed-0 tiny model"

    # recompute one item's label straight from the engine's log-probabilities
    k = next(i for i, r in enumerate(results) if r.valid)
    conv, a, b = batch[k]
    prompt = conv[0].content
    payloads = [
        render_request(judge.template, prompt=prompt, response_a=x, response_b=y, conversation=[]).payload
        for x, y in ((a, b), (b, a))
    ]
    assert all(isinstance(p, str) for p in payloads)  # format: text -> no chat template
    (ab,), (ba,) = vllm_engine.generate(payloads, judge.sampling)
    p_ab = choice_probabilities(ab, judge.spec)
    p_ba = choice_probabilities(ba, judge.spec)
    by_hand = [
        p_ab.probabilities["A"] if p_ab.ok else None,
        1.0 - p_ba.probabilities["A"] if p_ba.ok else None,
    ]
    valid = [p for p in by_hand if p is not None]
    assert results[k].prob_a == pytest.approx(sum(valid) / len(valid))


def test_pointwise_on_the_real_model_counts_samples_and_retries(vllm_engine):
    engine = Counting(vllm_engine)
    judge = PointwiseJudge(
        engine, samples=2, max_retries=1, sampling=Sampling(temperature=0.7, max_tokens=24, seed=1)
    )
    results = judge.score([(conv, a) for conv, a, _ in items(4)])
    assert engine.calls[0][0] == 4 and engine.calls[0][1].n == 2
    assert len(engine.calls) <= 2
    for r in results:
        assert r.n_valid <= 2 and r.n_valid == sum(j.status == "ok" for j in r.judgments)
        first_round = [j for j in r.judgments if j.metadata["attempt"] == 0]
        assert len(first_round) == 2
        # a retry only re-asks the slots that were invalid
        assert len(r.judgments) - len(first_round) == 2 - sum(j.status == "ok" for j in first_round)
        assert all(j.raw_output is not None and j.judge_model == vllm_engine.model_name for j in r.judgments)
        if r.mean_score is not None:
            assert 0 <= r.mean_score <= 5


def test_principle_and_chain_of_thought_on_the_real_model(vllm_engine):
    batch = items(6)
    results = PrincipleJudge(vllm_engine, seed=1).compare(batch)
    check_pairwise_results(results, 6)
    assert all(r.judgments[0].principle == r.judgments[1].principle is not None for r in results)

    cot = PairwiseJudge(
        vllm_engine, chain_of_thought=True, sampling=Sampling(temperature=0, max_tokens=16, logprobs=5)
    )
    results = cot.compare(batch[:3])
    check_pairwise_results(results, 3)
    for r in results:
        for j in r.judgments:
            if j.status != "ok":
                assert "Answer:" in j.invalid_reason or "answer token" in j.invalid_reason


def test_cli_judge_eval_with_a_custom_template_on_the_real_model(tiny_model_dir, tmp_path):
    """The one subprocess run: the CLI starts its own engine (about 20 s)."""
    template = TEXT_TEMPLATE
    pairs = tmp_path / "pairs.jsonl"
    with open(pairs, "w", encoding="utf-8") as fh:
        for conv, a, b in items(5):
            fh.write(json.dumps({"prompt": conv[0].content, "chosen": a, "rejected": b}) + "\n")
    out = tmp_path / "judgments.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "rlaif.cli",
        "judge-eval",
        "--model",
        str(tiny_model_dir),
        "--pairs",
        str(pairs),
        "--judge",
        str(template),
        "--limit",
        "4",
        "--out",
        str(out),
        "--kv-cache-gb",
        "0.25",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["n"] == 4 and summary["judgments"] == 8 and summary["template"] == "base_model_pairwise"
    assert summary["valid"] + round(summary["invalid_rate"] * 4) == 4
    assert summary["judgments_valid"] + sum(summary["invalid_reasons"].values()) == 8
    records = read_jsonl(out, Judgment)
    assert len(records) == 8 and all(
        r.kind == "custom" and r.judge_model == str(tiny_model_dir) for r in records
    )
