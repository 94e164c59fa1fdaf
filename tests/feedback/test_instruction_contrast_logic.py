"""Instruction-contrast RLCD with a scripted engine: which prompts are sent, which side is chosen, and
that every prompt ends as a pair or a counted drop. (The real-engine run is
tests/pipeline/test_instructions_pipeline.py.)"""

from __future__ import annotations

from fb_scripted import call_source

from rlaif.engines.scripted import ScriptedEngine
from rlaif.feedback import SourceContext, describe, run_source
from rlaif.feedback.instruction_contrast import InstructionContrastConfig, instruction_contrast
from rlaif.records import Message, PromptRecord

SOURCE = "rlaif.feedback.instruction_contrast:instruction_contrast"
LOWER = {"kind": "lowercase", "value": None}


def record(i: int, task: str = "Describe the moon.", specs=(LOWER,)) -> PromptRecord:
    prompt = f"{task} Write your whole answer in lowercase letters, without any capital letters."
    return PromptRecord(
        id=f"p{i}",
        messages=[Message(role="user", content=prompt)],
        metadata={"task": task, "instructions": list(specs)},
    )


def echo_engine(seen: list[str]) -> ScriptedEngine:
    def respond(conv, i, sampling):
        seen.append(conv[-1].content)
        return "REMINDED" if "Remember:" in conv[-1].content else "BARE " + conv[-1].content

    return ScriptedEngine(respond)


def test_positive_has_the_reminder_negative_is_the_bare_request_and_positive_is_chosen():
    seen: list[str] = []
    res = call_source(
        instruction_contrast, [record(0), record(1, "Tell me about dogs.")], echo_engine(seen), {}, seed=1
    )
    assert len(res.pairs) == 2 and res.stats.pairs_out == 2 and not res.dropped
    assert "Tell me about dogs." in seen  # the bare request, without its instruction
    assert any(s.endswith("Remember: Write your whole answer in lowercase letters, without any capital letters.")
               for s in seen)  # fmt: skip
    for pair, rec in zip(res.pairs, [record(0), record(1, "Tell me about dogs.")], strict=True):
        assert pair.chosen == "REMINDED" and pair.rejected == "BARE " + rec.metadata["task"]
        assert pair.prompt == rec.messages  # the pair's prompt has the instruction but no reminder
        assert pair.source == "instruction_contrast" and pair.metadata["chosen_side"] == "positive"
        assert pair.metadata["instructions"] == [LOWER]


def test_no_reminder_sends_the_plain_prompt_as_positive():
    seen: list[str] = []
    res = call_source(
        instruction_contrast, [record(0)], echo_engine(seen), InstructionContrastConfig(reminder=None)
    )
    assert record(0).messages[-1].content in seen
    assert res.pairs[0].chosen == "BARE " + record(0).messages[-1].content


def test_prompts_without_instructions_are_counted_drops_and_identical_sides_kept():
    plain = PromptRecord(id="plain", messages=[Message(role="user", content="Hi")])
    same = ScriptedEngine(lambda conv, i, s: "the same reply")
    res = run_source(
        SOURCE, [record(0), plain], same, {}, SourceContext(seed=0, round=0, adapter=None, chunk=0)
    )
    assert [(p.chosen, p.rejected) for p in res.pairs] == [("the same reply", "the same reply")]
    assert res.stats.drops == {"no_instruction": 1}  # identical sides: the pairs stage decides
    assert res.stats.pairs_out + res.stats.dropped == res.stats.prompts_in == 2
    assert {d.prompt_id: d.reason for d in res.dropped}["plain"] == "no_instruction"


def test_invalid_outputs_are_retried_then_dropped():
    calls = []

    def respond(conv, i, sampling):
        calls.append(sampling.seed)
        return "" if "Remember:" in conv[-1].content else "fine"

    res = call_source(instruction_contrast, [record(0)], ScriptedEngine(respond), {"max_retries": 2})
    assert res.pairs == [] and [d.reason for d in res.dropped] == ["invalid_output"]
    assert len(calls) == 2 + 2  # both sides once, then the positive twice more


def test_the_pipeline_validates_its_options_against_the_config_model():
    assert describe(SOURCE).config_model is InstructionContrastConfig


# -- candidates chosen by the policy's own contrastive likelihood ------------------------------------
def candidate_engine(scored: list[tuple[str, str]]) -> ScriptedEngine:
    """Reminded prompts get three candidates; the scorer gives per-token log-probs such that the
    contrast (given - bare, per token) is 0.0 for "plain", 1.0 for "lower case" and 0.5 for "half"."""
    texts = ["plain", "lower case", "half"]

    def respond(conv, i, sampling):
        return texts[i] if "Remember:" in conv[-1].content else "bare reply"

    def scorer(conv, text):
        scored.append((conv[-1].content, text))
        given = "lowercase" in conv[-1].content  # the pair prompt carries the instruction
        gain = {"plain": 0.0, "lower case": 1.0, "half": 0.5}.get(text, 0.0)
        n = len(text.split())
        return [(-1.0 + gain) if given else -1.0] * n

    return ScriptedEngine(respond, scorer=scorer)


def test_candidates_pick_the_reply_with_the_highest_contrast_and_keep_every_score():
    scored: list[tuple[str, str]] = []
    engine = candidate_engine(scored)
    res = call_source(instruction_contrast, [record(0)], engine, {"num_generations": 3}, seed=4)
    (pair,) = res.pairs
    assert pair.chosen == "lower case" and pair.rejected == "bare reply"
    cands = pair.metadata["candidates"]
    assert cands["asked"] == 3 and cands["valid"] == 3 and cands["chosen"] == 1
    assert cands["contrast"] == [0.0, 1.0, 0.5]
    assert cands["texts"] == ["plain", "lower case", "half"]
    # each candidate scored twice: under the pair's prompt (with the instruction, no reminder) and
    # under the bare request
    assert len(scored) == 6
    assert {c for c, _ in scored} == {record(0).messages[-1].content, "Describe the moon."}
    # one scoring call after the generate calls (plus the empty capability probe first)
    assert [c[1] for c in engine.calls if c[1] == "score"] == ["score", "score"]
    assert engine.calls[0][0] == 0  # the probe: nothing sampled before the engine was known to score


def test_candidate_ties_go_to_the_first_and_invalid_candidates_are_skipped():
    def respond(conv, i, sampling):
        return ["", "one", "two"][i] if "Remember:" in conv[-1].content else "bare"

    engine = ScriptedEngine(respond, scorer=lambda conv, text: [-1.0])  # every contrast is 0
    res = call_source(instruction_contrast, [record(0)], engine, {"num_generations": 3, "max_retries": 0})
    (pair,) = res.pairs
    assert pair.chosen == "one"  # the empty candidate is invalid; "one" and "two" tie
    assert pair.metadata["candidates"]["valid"] == 2 and pair.metadata["candidates"]["chosen"] == 0
    assert res.stats.counters.get("instruction_contrast_invalid_empty") == 1


def test_candidates_need_an_engine_that_scores_and_say_so_before_sampling():
    import pytest

    from rlaif.errors import EngineError

    engine = ScriptedEngine(lambda conv, i, s: "x")  # no scorer
    with pytest.raises(EngineError, match="cannot score a given text"):
        call_source(instruction_contrast, [record(0)], engine, {"num_generations": 2})
    assert engine.calls == []  # nothing was generated first
