"""Instruction-contrast RLCD with a scripted engine: which prompts are sent, which side is chosen, and
that every prompt ends as a pair or a counted drop. (The real-engine run is
tests/pipeline/test_instructions_pipeline.py.)"""

from __future__ import annotations

from fb_scripted import call_source

from rlaif.engines.scripted import ScriptedEngine
from rlaif.feedback import SourceContext, run_source, source_config_model
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


def test_prompts_without_instructions_and_identical_sides_are_counted_drops():
    plain = PromptRecord(id="plain", messages=[Message(role="user", content="Hi")])
    same = ScriptedEngine(lambda conv, i, s: "the same reply")
    res = run_source(
        SOURCE, [record(0), plain], same, {}, SourceContext(seed=0, round=0, adapter=None, chunk=0)
    )
    assert res.pairs == []
    assert res.stats.drops == {"no_instruction": 1, "identical": 1}
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
    assert source_config_model(SOURCE) is InstructionContrastConfig
