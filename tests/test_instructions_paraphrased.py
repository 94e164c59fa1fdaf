"""The second held-out set (held-out wordings and values), the prompt splitter the instruction-likelihood
judge relies on, and that judge's arithmetic (fake scores) and its run on a real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif.instructions import (
    KINDS,
    PARAPHRASES,
    build_paraphrased_heldout,
    build_prompt_sets,
    check,
    load_tasks,
    main,
    split_instruction,
)
from rlaif.judges.instruction_likelihood import instruction_likelihood
from rlaif.records import Message

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "prompts" / "instructions"
TASKS = REPO / "prompts" / "instruction_tasks.yaml"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (SHIPPED / name).read_text().splitlines()]


def test_paraphrased_set_holds_out_requests_wordings_and_values():
    tasks = load_tasks(TASKS)
    train, held = build_prompt_sets(tasks)
    para = build_paraphrased_heldout(tasks)
    assert len(para) == len(held) == 400
    assert {r["task"] for r in para} == {r["task"] for r in held}  # the held-out requests
    assert not {r["task"] for r in para} & {r["task"] for r in train}
    train_sentences = {r["prompt"][len(r["task"]) :].strip() for r in train}
    for r in para:
        (spec,) = r["instructions"]
        sentence = r["prompt"][len(r["task"]) :].strip()
        assert sentence not in train_sentences, sentence
        assert sentence == PARAPHRASES[spec["kind"]][0].format(value=spec["value"])
        if KINDS[spec["kind"]].values != (None,):
            assert spec["value"] not in KINDS[spec["kind"]].values, r
    per_kind = [sum(r["instructions"][0]["kind"] == k for r in para) for k in KINDS]
    assert per_kind == [40] * len(KINDS)
    assert build_paraphrased_heldout(tasks) == para  # deterministic
    assert build_paraphrased_heldout(tasks, seed=1) != para


def test_every_paraphrase_is_checkable_and_a_different_sentence():
    assert set(PARAPHRASES) == set(KINDS)
    for name, (wording, values) in PARAPHRASES.items():
        assert wording != KINDS[name].wording
        for value in values:
            assert check("x", {"kind": name, "value": value}) in (True, False)


def test_shipped_paraphrased_set_is_what_the_builder_writes(tmp_path):
    assert main([str(tmp_path), "--paraphrased"]) == 0
    for name in ("train.jsonl", "heldout.jsonl", "heldout_paraphrased.jsonl"):
        assert (tmp_path / name).read_text() == (SHIPPED / name).read_text(), name


def test_without_the_option_no_paraphrased_file_is_written(tmp_path):
    assert main([str(tmp_path)]) == 0
    assert not (tmp_path / "heldout_paraphrased.jsonl").exists()


@pytest.mark.parametrize("name", ["train.jsonl", "heldout.jsonl", "heldout_paraphrased.jsonl"])
def test_split_instruction_finds_the_request_of_every_shipped_prompt(name):
    for r in _rows(name):
        request, sentence = split_instruction(r["prompt"])
        assert request == r["task"]
        assert r["prompt"] == f"{request} {sentence}"


def test_split_instruction_refuses_text_without_a_known_instruction():
    assert split_instruction("Tell me about the moon.") is None
    assert split_instruction("Answer in at most 10 words.") is None  # no request before it
    assert split_instruction("Tell me about the moon. Answer in at most 10 words. Thanks") is None


class _FakeScorer:
    """Per-token log-probs: -1 per token given the instruction, -3 without it; None for 'too long'."""

    model_name = "fake"

    def __init__(self):
        self.calls = []

    def score_continuations(self, prompts, continuations, adapter=None):
        self.calls.append(list(prompts))
        out = []
        for msgs, text in zip(prompts, continuations, strict=True):
            if text == "too long":
                out.append(None)
                continue
            out.append([self.per_token(msgs[-1].content)] * len(text.split()))
        return out

    def per_token(self, last_user_turn: str) -> float:
        return -1.0 if split_instruction(last_user_turn) is not None else -3.0


def _conv(text: str) -> list[Message]:
    return [Message(role="system", content="Be brief."), Message(role="user", content=text)]


def test_instruction_likelihood_is_the_per_token_contrast_and_names_invalid_items():
    engine = _FakeScorer()
    prompts = [
        _conv("Describe tea. Answer in at most 10 words."),
        _conv("Describe tea."),
        _conv("Describe tea. Use no more than 12 words in your reply."),
        _conv("Describe tea. Answer in at most 10 words."),
    ]
    out = instruction_likelihood(prompts, ["hot leaf water", "x", "  ", "too long"], engine=engine)
    assert out[0] == pytest.approx(2.0)  # (-1 * 3) - (-3 * 3) over 3 tokens
    assert out[1]["value"] is None and "no known instruction" in out[1]["invalid_reason"]
    assert out[2] == {"value": None, "invalid_reason": "empty reply"}
    assert "does not fit" in out[3]["invalid_reason"]
    assert len(engine.calls) == 1  # one batched call
    bare = engine.calls[0][1]
    assert bare[0].content == "Be brief." and bare[-1].content == "Describe tea."


@pytest.mark.parametrize("name", ["instruction_likelihood", "instruction_and_request_likelihood"])
def test_instruction_likelihood_runs_as_a_self_rewarding_judge_on_a_real_engine(scoring_engine, name):
    """Through the judge spec the runs use, on the tiny vLLM model: real scores, one per reply."""
    from rlaif.judges.spec import build_judge

    judge = build_judge(
        {"kind": "python", "template": f"rlaif.judges.instruction_likelihood:{name}"}, scoring_engine
    )
    rows = _rows("train.jsonl")[:3]
    items = [([Message(role="user", content=r["prompt"])], "hello there friend") for r in rows]
    items.append(([Message(role="user", content="No instruction here.")], "hello"))
    verdicts = judge.score(items)
    assert [v.mean_score is not None for v in verdicts] == [True, True, True, False]
    assert all(isinstance(v.mean_score, float) for v in verdicts[:3])
    assert len({round(v.mean_score, 6) for v in verdicts[:3]}) > 1  # depends on the instruction


class _ThreeContextScorer(_FakeScorer):
    """Per-token log-probs: -1 given request + instruction, -2 given the request alone, -4 given the
    instruction alone (the cut to the instruction sentence)."""

    def per_token(self, last_user_turn: str) -> float:
        if split_instruction(last_user_turn) is not None:
            return -1.0
        return -2.0 if last_user_turn.startswith("Describe") else -4.0


def test_instruction_and_request_likelihood_is_the_smaller_of_the_two_contrasts():
    from rlaif.judges.instruction_likelihood import instruction_and_request_likelihood

    engine = _ThreeContextScorer()
    prompts = [_conv("Describe tea. Answer in at most 10 words."), _conv("Describe tea.")]
    out = instruction_and_request_likelihood(prompts, ["hot leaf water", "x"], engine=engine)
    # instruction contrast -1 - (-2) = 1, request contrast -1 - (-4) = 3: the judge takes 1
    assert out[0] == pytest.approx(1.0)
    assert "no known instruction" in out[1]["invalid_reason"]
    assert len(engine.calls) == 1  # one batched call: the full prompt once, then each cut
    contexts = engine.calls[0]
    assert [c[-1].content for c in contexts] == [
        "Describe tea. Answer in at most 10 words.",
        "Describe tea.",
        "Answer in at most 10 words.",
    ]
    assert all(c[0].content == "Be brief." for c in contexts)  # earlier turns are kept


def test_a_reply_the_request_does_not_explain_scores_low_even_when_the_instruction_does():
    """The non-answer the instruction contrast alone prefers ('Thank you.' for an ends-with
    instruction) loses to an answer under the second judge when the request explains the answer."""
    from rlaif.judges.instruction_likelihood import instruction_and_request_likelihood

    class Scorer:
        model_name = "fake"

        def score_continuations(self, prompts, continuations, adapter=None):
            out = []
            for msgs, text in zip(prompts, continuations, strict=True):
                last = msgs[-1].content
                ctx = (
                    "full"
                    if split_instruction(last)
                    else "request"
                    if last.startswith("Describe")
                    else "instr"
                )
                per_token = {  # the non-answer: explained by the instruction only
                    ("Thank you.", "full"): -1.0, ("Thank you.", "request"): -3.0, ("Thank you.", "instr"): -1.1,
                    ("Tea is hot. Thank you.", "full"): -1.0, ("Tea is hot. Thank you.", "request"): -1.2,
                    ("Tea is hot. Thank you.", "instr"): -2.5,
                }[(text, ctx)]  # fmt: skip
                out.append([per_token] * len(text.split()))
            return out

    prompts = [
        _conv('Describe tea. End your answer with the exact words "Thank you." and write nothing after them.')
    ] * 2
    replies = ["Thank you.", "Tea is hot. Thank you."]
    old = instruction_likelihood(prompts, replies, engine=Scorer())
    new = instruction_and_request_likelihood(prompts, replies, engine=Scorer())
    assert old[0] > old[1]  # 2.0 vs 0.2: the instruction contrast alone prefers the non-answer
    assert new[0] < new[1]  # 0.1 vs 0.2
