"""Instruction-contrast candidates on the real vLLM engine (tiny model): the chosen reply is the
candidate with the highest contrast, recomputed here with the engine's own scoring of the same texts;
a LoRA-enabled engine is refused before anything is sampled."""

from __future__ import annotations

import pytest
from fb_scripted import call_source

from rlaif.errors import EngineError
from rlaif.feedback.instruction_contrast import instruction_contrast
from rlaif.records import Message, PromptRecord

SPECS = {
    "lowercase": "Write your whole answer in lowercase letters, without any capital letters.",
    "max_words": "Answer in at most 10 words.",
}


def record(i: int, task: str, kind: str) -> PromptRecord:
    value = 10 if kind == "max_words" else None
    return PromptRecord(
        id=f"p{i}",
        messages=[Message(role="user", content=f"{task} {SPECS[kind]}")],
        metadata={"task": task, "instructions": [{"kind": kind, "value": value}]},
    )


RECORDS = [record(0, "Describe the moon.", "lowercase"), record(1, "Tell me about dogs.", "max_words")]
OPTIONS = {"num_generations": 3, "sampling": {"temperature": 1.0, "max_tokens": 8}}


@pytest.mark.vllm
def test_candidates_are_chosen_by_the_contrast_the_engine_scores(scoring_engine):
    res = call_source(instruction_contrast, RECORDS, scoring_engine, OPTIONS, seed=3)
    assert res.stats.pairs_out + res.stats.dropped == 2
    assert res.pairs, "the tiny model gave no pair at all"
    by_id = {r.id: r for r in RECORDS}
    for pair in res.pairs:
        rec, cands = by_id[pair.metadata["prompt_id"]], pair.metadata["candidates"]
        bare = [Message(role="user", content=rec.metadata["task"])]
        texts = cands["texts"]
        scores = scoring_engine.score_continuations(
            [rec.messages, bare] * len(texts), [t for t in texts for _ in (0, 1)]
        )
        expected = [
            (sum(scores[2 * k]) - sum(scores[2 * k + 1])) / len(scores[2 * k]) for k in range(len(texts))
        ]
        assert cands["contrast"] == pytest.approx(expected, abs=2e-3)
        best = max(range(len(expected)), key=lambda k: (expected[k], -k))
        assert pair.chosen == texts[best] == texts[cands["chosen"]]
        assert len(set(cands["seeds"])) == 1 and cands["asked"] == 3
    # the same seed gives the same pairs
    again = call_source(instruction_contrast, RECORDS, scoring_engine, OPTIONS, seed=3)
    assert [p.chosen for p in again.pairs] == [p.chosen for p in res.pairs]


@pytest.mark.vllm
def test_a_lora_engine_is_refused_before_sampling(vllm_engine):
    with pytest.raises(EngineError, match="enable_lora"):
        call_source(instruction_contrast, RECORDS, vllm_engine, OPTIONS)
