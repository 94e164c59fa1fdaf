"""``judge.score`` / ``judge.compare`` take conversations as ``engine.generate`` does: message dicts,
``Message`` records or a plain string, with the same judgments and ids for each (real vLLM engine)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rlaif.engines.base import Sampling
from rlaif.judges import load_judge
from rlaif.records import Message

DICTS = [{"role": "user", "content": "Name a colour."}]
MESSAGES = [Message(role="user", content="Name a colour.")]
SAMPLING = Sampling(temperature=0.7, max_tokens=12, seed=3)


def summary(results) -> list:
    return [
        (j.id, j.raw_output, j.status, j.score, j.choice) for r in results for j in r.judgments
    ]  # fmt: skip


def test_score_takes_dict_messages_and_strings(vllm_engine):
    judge = load_judge("pointwise", vllm_engine, samples=2, sampling=SAMPLING)
    with_messages = judge.score([(MESSAGES, "Blue."), (MESSAGES, "I like turtles.")])
    with_dicts = judge.score([(DICTS, "Blue."), (DICTS, "I like turtles.")])
    with_text = judge.score([("Name a colour.", "Blue."), ("Name a colour.", "I like turtles.")])
    assert summary(with_dicts) == summary(with_messages) == summary(with_text)
    assert len(summary(with_dicts)) >= 2  # judgments were made, not skipped


def test_compare_takes_dict_messages(vllm_engine):
    judge = load_judge("pairwise", vllm_engine, sampling=SAMPLING)
    with_messages = judge.compare([(MESSAGES, "Blue.", "Seven.")])
    with_dicts = judge.compare([(DICTS, "Blue.", "Seven.")])
    assert summary(with_dicts) == summary(with_messages) and len(summary(with_dicts)) == 2


def test_a_judge_without_a_model_takes_them_too_and_a_malformed_dict_names_the_field():
    judge = load_judge({"kind": "length"}, None)
    items = [("Blue.", "x"), ("I like turtles.", "y")]
    results = [
        judge.score([(conv, reply) for reply, _ in items]) for conv in (MESSAGES, DICTS, "Name a colour.")
    ]
    assert summary(results[0]) == summary(results[1]) == summary(results[2])
    assert [r.mean_score for r in results[1]] == [-5.0, -15.0]  # the shorter reply scores higher
    with pytest.raises(ValidationError, match="content"):
        judge.score([([{"role": "user"}], "Blue.")])
