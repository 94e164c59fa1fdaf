"""Judge logic on a scripted engine with hand-computed expected labels, counts and batching."""

from __future__ import annotations

import json

import pytest
from judges_testlib import WordCountingEngine, choice_completion, plain_step, shown_first, step

from rlaif.engines.base import Sampling
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import TemplateError
from rlaif.judges import PairwiseJudge, PointwiseJudge, PrincipleJudge, load_principles
from rlaif.judges.base import conversation_text
from rlaif.prompts import load_template
from rlaif.records import Completion, Message, stable_hash


def conv(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


# Answer-token distributions keyed by the response shown first.
DISTS = {
    "good": {"A": 0.6, " A": 0.1, "B": 0.3},  # P_AB(A) = 0.7
    "bad": {"A": 0.2, "B": 0.6},  # P_BA(A) = 0.25 -> P(a) = 0.75
    "left": {"A": 0.8, "B": 0.2},  # position-biased judge: always A
    "right": {"A": 0.8, "B": 0.2},
    "x3": {"A": 0.9, "B": 0.1},
    "y3": {"the": 0.7, "a": 0.3},  # unreadable order
    "x4": {"so": 1.0},
    "y4": {"so": 1.0},
}
ITEMS = [
    (conv("q1"), "good", "bad"),
    (conv("q2"), "left", "right"),
    (conv("q3"), "x3", "y3"),
    (conv("q4"), "x4", "y4"),
]


def logprob_engine() -> ScriptedEngine:
    return ScriptedEngine(lambda c, i, s: choice_completion(DISTS[shown_first(c)]))


def test_pairwise_combines_both_orders_by_hand():
    engine = logprob_engine()
    results = PairwiseJudge(engine).compare(ITEMS)

    # one generate call for every (item, order), greedy, top-20 log-probabilities
    assert len(engine.calls) == 1
    n_prompts, sampling, adapter = engine.calls[0]
    assert n_prompts == 8 and sampling.logprobs == 20 and sampling.temperature == 0.0 and adapter is None

    r1, r2, r3, r4 = results
    assert r1.prob_a == pytest.approx((0.7 + 0.75) / 2) and r1.consistent is True and r1.preferred == "a"
    assert r2.prob_a == pytest.approx((0.8 + 0.2) / 2) and r2.consistent is False
    assert r3.prob_a == pytest.approx(0.9) and r3.consistent is None and r3.valid
    assert r4.prob_a is None and r4.consistent is None and not r4.valid and r4.preferred is None

    for r in results:
        assert [j.orders for j in r.judgments] == [["AB"], ["BA"]]
    ab, ba = r1.judgments
    assert ab.probabilities["A"] == pytest.approx(0.7) and ab.metadata["p_response_a"] == pytest.approx(0.7)
    assert ba.probabilities["A"] == pytest.approx(0.25) and ba.metadata["p_response_a"] == pytest.approx(0.75)
    assert ab.consistent is True and ba.consistent is True

    bad = r3.judgments[1]
    assert bad.status == "invalid" and bad.probabilities is None and bad.choice is None
    assert bad.invalid_reason.startswith("none of the labels (A, B) is among the top-2 alternatives")
    assert all(j.status == "invalid" for j in r4.judgments)


def test_pairwise_judgment_provenance():
    engine = logprob_engine()
    result = PairwiseJudge(engine).compare(ITEMS[:1], ids=["pair-1"])[0]
    tpl = load_template("pairwise")
    ab, ba = result.judgments
    expected_ab = tpl.render(prompt="q1", response_a="good", response_b="bad", conversation=[])
    expected_ba = tpl.render(prompt="q1", response_a="bad", response_b="good", conversation=[])
    assert ab.prompt_hash == stable_hash(expected_ab) and ba.prompt_hash == stable_hash(expected_ba)
    for j in (ab, ba):
        assert j.kind == "pairwise" and j.judge_model == "scripted"
        assert j.template == "pairwise" and j.template_hash == tpl.content_hash
        assert j.subject_ids == ["pair-1"]
    assert (ab.raw_output, ba.raw_output) == ("A", "B") and ab.id != ba.id


def test_clamp_and_single_order():
    clamped = PairwiseJudge(logprob_engine(), clamp=(0.4, 0.6)).compare(ITEMS[:1])[0]
    assert clamped.prob_a == 0.6 and clamped.prob_a_unclamped == pytest.approx(0.725)

    engine = logprob_engine()
    single = PairwiseJudge(engine, both_orders=False).compare(ITEMS)
    assert engine.calls[0][0] == 4
    assert [len(r.judgments) for r in single] == [1, 1, 1, 1]
    assert single[1].prob_a == pytest.approx(0.8) and single[1].consistent is None


def cot_completion(reasoning: str, dist: dict[str, float]) -> Completion:
    steps = [plain_step(reasoning), plain_step("\nAnswer"), plain_step(":")]
    steps.append(step(max(dist, key=dist.get), dist))
    return Completion(text="".join(s.token for s in steps), logprobs=steps, finish_reason="stop")


def test_chain_of_thought_reads_after_the_marker():
    # AB shows a first: the judge says B (=b) with 0.99 ; BA shows b first: says A (=b) with 0.97
    cot = {"a": {" B": 0.99, " A": 0.01}, "b": {" A": 0.97, " B": 0.03}}
    engine = ScriptedEngine(lambda c, i, s: cot_completion("A is curt; B explains. ", cot[shown_first(c)]))
    judge = PairwiseJudge(engine, chain_of_thought=True)
    assert judge.template.name == "pairwise_cot" and judge.sampling.max_tokens == 384
    result = judge.compare([(conv("q"), "a", "b")])[0]
    assert result.prob_a == pytest.approx((0.01 + 0.03) / 2) and result.consistent is True
    assert result.judgments[0].metadata["parse"]["answer_token_index"] == 3


def test_text_choice_template_gives_hard_labels(tmp_path):
    path = tmp_path / "ab_text.j2"
    path.write_text(
        "---\nname: ab_text\nvariables: [prompt, response_a, response_b]\n"
        "parser: {type: choice, labels: [A, B], source: text}\n---\n"
        "{{ prompt }}\n<response_a>\n{{ response_a }}\n</response_a>\n<response_b>\n{{ response_b }}\n</response_b>\n",
        encoding="utf-8",
    )
    answers = {"left": "A", "right": "(A) because", "x3": "B.", "y3": "I cannot tell"}
    engine = ScriptedEngine(lambda c, i, s: answers[shown_first(c)])
    judge = PairwiseJudge(engine, template=path)
    assert judge.sampling.logprobs is None
    r2, r3 = judge.compare([ITEMS[1], ITEMS[2]])
    assert r2.prob_a == 0.5 and r2.consistent is False  # always "A": position bias, caught
    assert r3.prob_a == 0.0 and r3.consistent is None  # one readable order says b
    assert r3.judgments[1].invalid_reason == "no label (A, B) at the start of the output"


def cai_engine(seen: list[str]) -> ScriptedEngine:
    def respond(c, i, s):
        seen.append(c[-1].content)
        return choice_completion({"A": 0.7, "B": 0.3})

    return ScriptedEngine(respond)


def test_principle_judge_samples_one_principle_per_comparison():
    seen: list[str] = []
    principles = {p.id: p.text for p in load_principles("cai_principles")}
    judge = PrincipleJudge(cai_engine(seen), seed=3)
    items = [(conv(f"q{k}"), f"a{k}", f"b{k}") for k in range(40)]
    ids = [f"cmp-{k}" for k in range(40)]
    results = judge.compare(items, ids=ids)
    used = set()
    for k, r in enumerate(results):
        ab, ba = r.judgments
        assert ab.principle == ba.principle == r.principle and ab.principle in principles
        assert ab.kind == "principle" and ab.metadata["principle_text"] == principles[ab.principle]
        assert principles[ab.principle] in seen[2 * k] and principles[ab.principle] in seen[2 * k + 1]
        assert r.prob_a == pytest.approx((0.7 + 0.3) / 2)  # always-A judge: no information
        used.add(ab.principle)
    assert len(used) > 8  # draws vary across comparisons

    # same id -> same principle, whatever else is in the batch; another seed -> other draws
    again = PrincipleJudge(cai_engine([]), seed=3).compare(items[5:6], ids=ids[5:6])[0]
    assert again.principle == results[5].principle
    other = PrincipleJudge(cai_engine([]), seed=4).compare(items, ids=ids)
    assert [r.principle for r in other] != [r.principle for r in results]


def test_principle_judge_chain_of_thought_clamps_by_default(tmp_path):
    engine = ScriptedEngine(lambda c, i, s: cot_completion("Thinking. ", {" (A": 0.99, " (B": 0.01}))
    judge = PrincipleJudge(engine, chain_of_thought=True)
    assert judge.template.name == "cai_principle_choice_cot" and judge.clamp == (0.4, 0.6)
    r = judge.compare([(conv("q"), "a", "b")])[0]
    assert r.prob_a_unclamped == pytest.approx(0.5) and r.prob_a == pytest.approx(0.5)
    engine2 = ScriptedEngine(
        lambda c, i, s: cot_completion(
            "T. ", {" A": 0.99, " B": 0.01} if "(A) a" in c[-1].content else {" B": 0.98, " A": 0.02}
        )
    )
    r = PrincipleJudge(engine2, chain_of_thought=True).compare([(conv("q"), "a", "b")])[0]
    assert r.prob_a_unclamped == pytest.approx((0.99 + 0.98) / 2) and r.prob_a == 0.6
    # custom principles file, given by path
    path = tmp_path / "mine.yaml"
    path.write_text(
        'principles:\n  - Which reply is kinder?\n  - {id: brief, text: "Which reply is shorter?"}\n'
    )
    assert [p.id for p in load_principles(path)] == ["p1", "brief"]
    path.write_text("principles:\n  - {id: x, txt: typo}\n")
    with pytest.raises(TemplateError, match="principle 1 must be a string or a mapping with 'text'"):
        load_principles(path)
    path.write_text("principles: [{id: x, text: a, weight: 2}]\n")
    with pytest.raises(TemplateError, match=r"mine.yaml: principle 1: unknown key\(s\) weight"):
        load_principles(path)


POINTWISE_SCRIPT = {
    # item -> list of answers per round (first round has K=3 samples)
    "r1": [["Score: 4", "garbage", "Score: 2"], ["Score: 3", "unused", "unused"]],
    "r2": [["Score: 5", "Score: 5", "Score: 4"]],
    "r3": [["nope", "nope", "nope"], ["Score: 9", "nah", "nope"], ["still no", "no", "no"]],
}


def pointwise_engine() -> ScriptedEngine:
    def respond(c, i, s):
        item = c[-1].content.split("<reply>\n", 1)[1].split("\n</reply>", 1)[0]
        round_ = len(engine.calls) - 1
        return POINTWISE_SCRIPT[item][round_][i]

    engine = ScriptedEngine(respond)
    return engine


def test_pointwise_samples_averages_and_reasks_only_invalid():
    engine = pointwise_engine()
    judge = PointwiseJudge(engine, samples=3, max_retries=2, sampling=Sampling(temperature=0.7, seed=7))
    items = [(conv("q"), "r1"), (conv("q"), "r2"), (conv("q"), "r3")]
    r1, r2, r3 = judge.score(items)

    # round 1: all three items, n=3 ; round 2: r1 (needs 1) and r3 (needs 3) with n=3 ; round 3: r3
    assert [(n, s.n, s.seed) for n, s, _ in engine.calls] == [(3, 3, 7), (2, 3, 8), (1, 3, 9)]
    assert r1.mean_score == pytest.approx((4 + 2 + 3) / 3) and r1.n_valid == 3
    assert [j.raw_output for j in r1.judgments] == ["Score: 4", "garbage", "Score: 2", "Score: 3"]
    assert [j.metadata["attempt"] for j in r1.judgments] == [0, 0, 0, 1]
    assert [j.metadata["sample"] for j in r1.judgments] == [0, 1, 2, 3]
    assert r1.judgments[1].invalid_reason.startswith("no score found")
    assert r2.mean_score == pytest.approx(14 / 3) and len(r2.judgments) == 3
    assert r3.mean_score is None and r3.n_valid == 0 and len(r3.judgments) == 9
    assert "score 9 is outside [0, 5]" in [j.invalid_reason for j in r3.judgments]
    assert len({j.id for r in (r1, r2, r3) for j in r.judgments}) == 16
    tpl = load_template("self_rewarding_rubric")
    assert all(j.template_hash == tpl.content_hash and j.kind == "pointwise" for j in r1.judgments)


def test_pointwise_json_template_uses_guided_decoding(tmp_path):
    from judges_testlib import ScoreVerdict

    path = tmp_path / "json_rubric.j2"
    path.write_text(
        "---\nname: json_rubric\nvariables: [prompt, response]\n"
        "parser: {type: json, schema: 'judges_testlib:ScoreVerdict', score_field: score, min: 1, max: 10}\n"
        "---\nRate {{ response }} for {{ prompt }} as JSON.\n",
        encoding="utf-8",
    )
    engine = ScriptedEngine(lambda c, i, s: json.dumps({"why": "ok", "score": 6 + i}), guided_json=True)
    result = PointwiseJudge(engine, template=path, samples=2).score([(conv("q"), "r")])[0]
    assert engine.calls[0][1].json_schema == ScoreVerdict.model_json_schema()
    assert result.mean_score == pytest.approx(6.5) and result.judgments[0].metadata["parsed"]["why"] == "ok"
    plain = ScriptedEngine(lambda c, i, s: '{"why": "ok", "score": 8}', guided_json=False)
    PointwiseJudge(plain, template=path, samples=1).score([(conv("q"), "r")])
    assert plain.calls[0][1].json_schema is None


def test_over_long_requests_are_recorded_not_sent():
    engine = WordCountingEngine(lambda c, i, s: choice_completion(DISTS[shown_first(c)]), max_model_len=120)
    long_item = (conv("q"), "good", "word " * 200)
    r_ok, r_long = PairwiseJudge(engine).compare([ITEMS[0], long_item])
    assert engine.calls[0][0] == 2  # only the two orders of the short item were sent
    assert r_ok.valid and not r_long.valid
    reason = r_long.judgments[0].invalid_reason
    assert reason.startswith("prompt is ") and reason.endswith(
        "the model's context is 120 (request not sent)"
    )

    engine = WordCountingEngine(lambda c, i, s: "Score: 3", max_model_len=120)
    engine.max_model_len = 400  # the rubric alone is ~250 words
    short, long_ = PointwiseJudge(engine, samples=2).score([(conv("q"), "fine"), (conv("q"), "w " * 300)])
    assert short.mean_score == 3.0 and long_.mean_score is None
    assert len(long_.judgments) == 1 and len(engine.calls) == 1  # no pointless retries


def test_conversation_text_for_multi_turn_prompts():
    messages = [
        Message(role="user", content="hi"),
        Message(role="assistant", content="hello"),
        Message(role="user", content="help me"),
    ]
    assert conversation_text(messages) == "User: hi\n\nAssistant: hello\n\nUser: help me"
    assert conversation_text("just text") == "just text"


def test_bad_judge_configuration_is_reported(tmp_path):
    engine = logprob_engine()
    with pytest.raises(TemplateError, match="a pointwise judge needs a 'score' parser"):
        PointwiseJudge(engine, template="pairwise")
    blind = tmp_path / "blind.j2"
    blind.write_text(
        "---\nname: blind\nvariables: [prompt]\njudge: pointwise\n"
        "parser: {type: score, pattern: 'Score: (\\d)', min: 0, max: 5}\n---\n{{ prompt }}\n"
    )
    with pytest.raises(TemplateError, match=r"a pointwise template must .* \(missing: response\)"):
        PointwiseJudge(engine, template=blind)
    with pytest.raises(TemplateError, match="a pairwise judge needs a 'choice' parser"):
        PairwiseJudge(engine, template="self_rewarding_rubric")
    with pytest.raises(
        TemplateError, match="must declare the variables prompt, response_a, response_b, principle"
    ):
        PrincipleJudge(engine, template="pairwise")
    with pytest.raises(ValueError, match="clamp"):
        PairwiseJudge(engine, clamp=(0.7, 0.3))
    with pytest.raises(ValueError, match="got 1 ids for 2 items"):
        PairwiseJudge(engine).compare(ITEMS[:2], ids=["x"])
