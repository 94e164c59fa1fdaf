"""Graded scores on a 1-10 scale: "10" starts with the digit "1", so the score token's top-k cannot tell
1 from 10 (issue: "Score: 9" scored 2.87). Every label is scored as a whole continuation instead."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from judges_testlib import choice_completion

from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import EngineError, TemplateError
from rlaif.judges import PointwiseJudge, from_template
from rlaif.judges.base import render_response_requests
from rlaif.judges.label_scores import needs_continuations, scale_labels
from rlaif.prompts import ScoreParserSpec
from rlaif.records import Message

TEMPLATE = Path(__file__).parent / "assets" / "rubric_1_10.j2"
PROMPT = [Message(role="user", content="How do I boil an egg?")]
# p(output prefix + label): "1" includes "10" (0.35 of its 0.4), as a digit-splitting tokenizer gives
RAW = {"Score: 9": 0.5, "Score: 1": 0.4, "Score: 10": 0.35, "Score: 8": 0.05}


class ScoringScripted(ScriptedEngine):
    """Answers "Score: 9" whose score token's top-k says "9" 0.5, "1" 0.4, and scores given texts."""

    def __init__(self):
        super().__init__(lambda *_: choice_completion({"9": 0.5, "1": 0.4, "8": 0.1}, prefix=["Score", ": "]))
        self.scored: list[str] = []

    def score_continuations(self, prompts, continuations, adapter=None):
        self.scored.extend(continuations)
        return [[math.log(RAW.get(text, 1e-9))] for text in continuations]


def test_a_score_of_9_on_a_1_to_10_scale_is_not_pulled_towards_1():
    engine = ScoringScripted()
    result = from_template(PointwiseJudge, engine, TEMPLATE, samples=1).score([(PROMPT, "Boil it.")])[0]
    exact = {"9": 0.5, "1": 0.4 - 0.35, "10": 0.35, "8": 0.05}
    want = sum(int(k) * p for k, p in exact.items()) / sum(exact.values())
    assert result.mean_score == pytest.approx(want) and result.mean_score > 8.5
    parse = result.judgments[0].metadata["parse"]
    assert parse["greedy_score"] == 9.0 and set(parse["score_distribution"]) == {str(v) for v in range(1, 11)}
    assert sorted(engine.scored) == sorted(f"Score: {v}" for v in range(1, 11))  # one call, every label


def test_an_engine_that_cannot_score_text_is_refused_with_its_reason():
    engine = ScriptedEngine(lambda *_: "Score: 9")
    with pytest.raises(EngineError, match="cannot score a given text"):
        from_template(PointwiseJudge, engine, TEMPLATE, samples=1).score([(PROMPT, "Boil it.")])


def test_which_scales_need_whole_label_scoring():
    assert not needs_continuations(ScoreParserSpec(min=0, max=5))  # one digit: the top-k path, unchanged
    assert needs_continuations(ScoreParserSpec(min=1, max=10))
    assert needs_continuations(ScoreParserSpec(min=-3, max=3))
    with pytest.raises(TemplateError, match="at most 101"):
        scale_labels(ScoreParserSpec(min=0, max=1000), where="t")


@pytest.mark.vllm
def test_1_to_10_expected_scores_on_the_real_engine(scoring_engine):
    """Guided "Score: N" on the tiny model; each label's mass is checked against the engine's own
    log p(prefix + label), scored separately here."""
    judge = from_template(PointwiseJudge, scoring_engine, TEMPLATE, samples=1)
    items = [(PROMPT, f"Reply number {k}: put it in hot water.") for k in range(6)]
    results = judge.score(items)
    assert all(r.n_valid == 1 for r in results)
    for res in results:
        parse = res.judgments[0].metadata["parse"]
        dist = parse["score_distribution"]
        assert list(dist) == [str(v) for v in range(1, 11)] and sum(dist.values()) == pytest.approx(1.0)
        assert res.mean_score == pytest.approx(sum(int(k) * p for k, p in dist.items()))
        assert 1.0 <= res.mean_score <= 10.0 and parse["greedy_score"] in range(1, 11)
    # independent check on the first item: mass ratios match log p(prefix + label) from the engine
    payload = render_response_requests(judge.template, [items[0]])[0].payload
    texts = [f"Score: {v}" for v in range(1, 11)]
    raw = [math.exp(sum(r)) for r in scoring_engine.score_continuations([payload] * 10, texts)]
    dist = results[0].judgments[0].metadata["parse"]["score_distribution"]
    assert dist["9"] / dist["2"] == pytest.approx(raw[8] / raw[1], rel=1e-4)
    assert dist["10"] / dist["2"] == pytest.approx(raw[9] / raw[1], rel=1e-4)
    assert dist["1"] / dist["2"] == pytest.approx(max(raw[0] - raw[9], 0.0) / raw[1], rel=1e-4, abs=1e-9)
