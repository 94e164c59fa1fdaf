"""Self-Rewarding selection with a scripted policy-judge and hand-computed mean scores."""

from __future__ import annotations

import pytest
from fb_scripted import PerRequestScriptedEngine, call_source

from rlaif.feedback.self_instruct import SelfInstructConfig, rouge_l
from rlaif.feedback.self_rewarding import self_rewarding
from rlaif.records import Message, PromptRecord

# Judge verdicts per prompt, candidate and judge sample (None: an unparseable judgment).
SCORES = {
    # means 4, 3, 1, 5 (only the valid one counts) -> best c3 (5) vs worst c2 (1), margin 4
    "alpha": [[4, 4, 4], [2, 3, 4], [1, 1, 1], [5, None, None]],
    # every mean is 3 -> tie
    "beta": [[3, 3, 3], [3, 3, 3], [2, 3, 4], [3, 3, 3]],
    # three candidates with only invalid judgments -> one scored candidate -> too_few_scored
    "gamma": [[None] * 3, [None] * 3, [None] * 3, [2, 2, 2]],
    # means 3, 8/3, 3, 3 -> margin 1/3 < min_margin 0.5
    "delta": [[3, 3, 3], [3, 3, 2], [3, 3, 3], [3, 3, 3]],
}


NO_RETRY = {"template": "self_rewarding_rubric", "max_retries": 0}


def policy_and_judge(conv, i, sampling):
    text = conv[-1].content
    if "<reply>" in text:  # the rubric prompt: the same policy judges its own candidates
        reply = text.split("<reply>\n")[1].split("\n</reply>")[0]
        prompt, cand = reply.rsplit(" c", 1)
        table = SCORES.get(prompt.removeprefix("answer to "))
        score = table[int(cand)][i] if table else int(cand)  # other prompts: the candidate index
        return "I am not sure." if score is None else f"Fair enough.\nScore: {score}"
    return f"answer to {text} c{i}"


def prompts(*names: str) -> list[PromptRecord]:
    return [PromptRecord(id=n, messages=[Message(role="user", content=n)]) for n in names]


def test_best_vs_worst_ties_margins_and_excluded_candidates():
    engine = PerRequestScriptedEngine(policy_and_judge)
    result = call_source(
        self_rewarding,
        prompts("alpha", "beta", "gamma", "delta"),
        engine,
        {"min_margin": 0.5},
        seed=1,
        judge=NO_RETRY,
    )
    gen_call, judge_call = engine.requests
    assert len(gen_call) == 4 and all(s.n == 4 for _, s in gen_call)  # N=4 candidates per prompt, one call
    assert (gen_call[0][1].temperature, gen_call[0][1].top_p) == (0.7, 0.9)
    assert len(judge_call) == 16 and all(s.n == 3 for _, s in judge_call)  # K=3 judgments each, one call
    stats = result.stats
    assert stats.prompts_in == 4 and stats.pairs_out == 1
    assert stats.drops == {"tie": 1, "too_few_scored": 1, "below_min_margin": 1} and stats.balanced
    assert stats.counters["candidates_excluded_all_judgments_invalid"] == 3
    assert stats.counters["invalid_judgments"] == 2 + 9
    (pair,) = result.pairs
    assert pair.chosen == "answer to alpha c3" and pair.rejected == "answer to alpha c2"
    assert pair.margin == 4.0 and pair.soft_label is None
    assert pair.metadata["candidate_scores"] == [4.0, 3.0, 1.0, 5.0]
    assert (pair.metadata["chosen_index"], pair.metadata["rejected_index"]) == (3, 2)
    assert len(pair.judgment_ids) == 6  # the chosen and rejected candidates' judgments
    assert len(result.judgments) == 48
    assert {j.id for j in result.judgments} >= set(pair.judgment_ids)


def test_judge_retries_fill_invalid_slots():
    engine = PerRequestScriptedEngine(policy_and_judge)
    result = call_source(
        self_rewarding,
        prompts("gamma"),
        engine,
        {},
        judge={"template": "self_rewarding_rubric", "max_retries": 1},
    )
    # the 3 all-invalid candidates are re-asked once (n=3 each) in one more call, still invalid
    assert [len(r) for r in engine.requests] == [1, 4, 3]
    assert result.stats.drops == {"too_few_scored": 1}


def test_zero_margin_keeps_any_non_tie():
    result = call_source(
        self_rewarding, prompts("delta"), PerRequestScriptedEngine(policy_and_judge), {}, judge=NO_RETRY
    )
    (pair,) = result.pairs
    assert pair.margin == pytest.approx(1 / 3) and pair.rejected == "answer to delta c1"


def test_length_control_options():
    def longer(conv, i, s):
        text = conv[-1].content
        if "<reply>" in text:
            reply = text.split("<reply>\n")[1].split("\n</reply>")[0]
            return f"Score: {len(reply) % 5}"
        return "x" * (5 + 7 * i)  # lengths 5, 12, 19, 26 -> scores 0, 2, 4, 1

    one = {"template": "self_rewarding_rubric", "samples": 1, "max_retries": 0}
    plain = call_source(self_rewarding, prompts("q"), PerRequestScriptedEngine(longer), {}, judge=one)
    assert (len(plain.pairs[0].chosen), len(plain.pairs[0].rejected)) == (19, 5)  # max 4 vs min 0
    capped = call_source(
        self_rewarding, prompts("q"), PerRequestScriptedEngine(longer), {"max_length_ratio": 2.0}, judge=one
    )
    assert capped.stats.drops == {"length_ratio": 1}  # 19/5 = 3.8 > 2
    matched = call_source(
        self_rewarding,
        prompts("q"),
        PerRequestScriptedEngine(longer),
        {"pairing": "length_matched"},
        judge=one,
    )
    # positive-margin pairs, closest lengths first: (19 vs 26 scores 4 vs 1) |log| 0.31 beats (12 vs 5) 0.88
    assert (len(matched.pairs[0].chosen), len(matched.pairs[0].rejected)) == (19, 26)
    no_shorter = call_source(
        self_rewarding,
        prompts("q"),
        PerRequestScriptedEngine(longer),
        {"pairing": "length_matched", "min_length_ratio": 0.9},
        judge=one,
    )
    # 19/26 = 0.73 < 0.9 is skipped; the next closest is 19 vs 12 (scores 4 vs 2), |log| 0.46
    assert (len(no_shorter.pairs[0].chosen), len(no_shorter.pairs[0].rejected)) == (19, 12)
    assert plain.stats.length["mean_ratio"] == pytest.approx(19 / 5)


def test_adapter_serves_generation_and_judging():
    engine = PerRequestScriptedEngine(policy_and_judge)
    call_source(self_rewarding, prompts("alpha"), engine, {}, adapter="/adapters/round1", judge=NO_RETRY)
    assert [adapter for _, _, adapter in engine.calls] == ["/adapters/round1", "/adapters/round1"]


def test_self_instruct_new_prompts_with_near_duplicate_filter():
    seeds = prompts("Write a poem about the sea", "Explain how a bicycle works", "List three uses of vinegar")
    outputs = iter(
        [
            "Write a poem about the sea",  # verbatim copy of a seed -> near duplicate
            "Describe the water cycle for a child",
            "",  # empty -> invalid
            "Describe the water cycle for a small child",  # near duplicate of the accepted one
            "Suggest a name for a bakery\nRequest 6: cut here",
        ]
    )

    def responder(conv, i, s):
        text = conv[-1].content
        if "Request 1:" in text:
            return next(outputs)
        return policy_and_judge(conv, i, s)

    engine = PerRequestScriptedEngine(responder)
    result = call_source(
        self_rewarding,
        seeds,
        engine,
        {"self_instruct": {"num_prompts": 5, "num_examples": 2}},
        judge=NO_RETRY,
    )
    assert [p.messages[0].content for p in result.new_prompts] == [
        "Describe the water cycle for a child",
        "Suggest a name for a bakery",
    ]
    counters = result.stats.counters
    assert counters["self_instruct_requested"] == 5 and counters["self_instruct_accepted"] == 2
    assert (
        counters["self_instruct_dropped_near_duplicate"] == 2
        and counters["self_instruct_dropped_invalid"] == 1
    )
    assert result.stats.prompts_in == 2  # only the new prompts are used, as in the paper
    assert len(engine.requests[0]) == 5  # one call for all self-instruct requests
    meta = result.new_prompts[0].metadata
    assert len(meta["example_ids"]) == 2 and set(meta["example_ids"]) <= {p.id for p in seeds}
    assert result.stats.pairs_out == 2 and result.stats.balanced
    assert result.pairs[0].metadata["prompt_provenance"]["source"] == "self_instruct"


def test_rouge_l_hand_computed():
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("a b c d", "a x c y") == pytest.approx(0.5)  # LCS 2, P = R = 0.5
    assert rouge_l("", "a") == 0.0
    assert SelfInstructConfig().max_similarity == 0.7


def test_per_request_seeds_make_judgments_of_different_items_independent():
    from rlaif.engines.base import Sampling
    from rlaif.generation.retry import PerRequestSeeds

    inner = PerRequestScriptedEngine(lambda conv, i, s: f"{s.seed}")
    engine = PerRequestSeeds(inner)
    assert engine.model_name == "scripted"  # everything else is the wrapped engine's
    out = engine.generate(["judge x", "judge y", "judge x"], Sampling(seed=5))
    seeds = [o[0].text for o in out]
    assert seeds[0] != seeds[1] and seeds[0] == seeds[2]  # per content, not per position
    again = engine.generate(["judge y"], Sampling(seed=5))  # a single request keeps the call's seed
    assert again[0][0].text == "5"
    unseeded = engine.generate(["a", "b"], Sampling())
    assert [o[0].text for o in unseeded] == ["None", "None"]
    assert len(inner.requests[0]) == 3  # still one generate call
