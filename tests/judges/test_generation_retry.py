"""The shared sample-until-valid loop (rlaif.generation.retry) with a scripted engine."""

from __future__ import annotations

from judges_testlib import WordCountingEngine

from rlaif.engines.base import Sampling
from rlaif.engines.scripted import ScriptedEngine
from rlaif.generation.retry import generate_each, sample_until_valid


def test_retries_hold_only_pending_requests_and_long_ones_are_never_sent():
    answers = {"a": ["bad", "bad", "ok"], "b": ["ok"], "c": ["bad", "bad", "bad", "bad"]}
    engine = WordCountingEngine(lambda conv, i, s: answers[conv[-1].content].pop(0), max_model_len=5)
    requests = ["a", "b", "c", "one two three four five six"]
    valid: dict[int, int] = {}

    def take(i, completions, attempt):
        if completions[0].text == "ok":
            valid[i] = attempt
            return False
        return True

    report = sample_until_valid(
        engine, requests, samplings=lambda pending, attempt: [Sampling(seed=attempt)] * len(pending),
        take=take, max_retries=2, adapter="/adapter",
    )  # fmt: skip
    assert [n for n, _, _ in engine.calls] == [3, 2, 2]  # one call per attempt, only pending requests
    assert [s.seed for _, s, _ in engine.calls] == [0, 1, 2]
    assert {adapter for _, _, adapter in engine.calls} == {"/adapter"}
    assert valid == {1: 0, 0: 2}  # b valid at once, a on the second retry
    assert list(report.too_long) == [3] and "context is 5" in report.too_long[3]
    assert report.calls == 3 and report.retried_requests == 4
    assert answers["c"] == ["bad"]  # c was asked max_retries + 1 = 3 times, never more


def test_generate_each_sends_one_setting_when_all_are_equal():
    engine = ScriptedEngine(lambda conv, i, s: "x")
    generate_each(engine, ["a", "b"], [Sampling(seed=1), Sampling(seed=1)], None)
    assert engine.calls[-1][1] == Sampling(seed=1)  # a shared Sampling, not a list
