"""The one log-probability contrast (rlaif.generation.contrast) that the contrastive-likelihood judge,
the instruction-likelihood judge and instruction-contrast's candidate choice share.

Logic tests use the scripted engine with hand-made per-token log-probabilities; the real-model test
checks the contrast on the tiny model against transformers' own forward pass."""

from __future__ import annotations

import pytest

from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import EngineError
from rlaif.generation import log_prob_contrasts
from rlaif.generation.contrast import Contrast, contrast_of

POS = [{"role": "system", "content": "positive"}, {"role": "user", "content": "Hi"}]
NEG = [{"role": "system", "content": "negative"}, {"role": "user", "content": "Hi"}]

TABLE = {
    ("positive", "a b"): [-1.0, -2.0],  # mean -1.5
    ("negative", "a b"): [-4.0, -1.0],  # mean -2.5
    ("positive", "c"): [-0.5],
    ("negative", "c"): [-0.25],
    ("positive", "long"): None,
    ("negative", "long"): [-1.0],
    ("positive", ""): [],
    ("negative", ""): [],
}


def table_engine(seen: list) -> ScriptedEngine:
    def scorer(conv, reply):
        seen.append((conv[0].content, reply))
        return TABLE[(conv[0].content, reply)]

    return ScriptedEngine(lambda *_: "", scorer=scorer)


def test_contrast_is_the_difference_of_mean_token_logprobs_in_one_call():
    seen: list = []
    engine = table_engine(seen)
    items = [(POS, NEG, "a b"), (POS, NEG, "c"), (POS, NEG, "long"), (POS, NEG, "")]
    out = log_prob_contrasts(engine, items, adapter="round_1")
    assert out[0] == Contrast(value=1.0, mean_positive=-1.5, mean_negative=-2.5, tokens=2)
    assert out[1] == Contrast(value=-0.25, mean_positive=-0.5, mean_negative=-0.25, tokens=1)
    assert out[2] == Contrast(value=None, invalid="too_long")  # one side does not fit: no value
    assert out[3] == Contrast(value=None, invalid="empty")
    assert engine.calls == [(8, "score", "round_1")]  # both contexts of every item, one call
    assert seen[:4] == [("positive", "a b"), ("negative", "a b"), ("positive", "c"), ("negative", "c")]


def test_contrast_of_unequal_lengths_averages_each_side_on_its_own():
    assert contrast_of([-1.0, -3.0], [-6.0]).value == pytest.approx(4.0)  # -2 - (-6)
    assert contrast_of([-1.0], None).invalid == "too_long"
    assert contrast_of([], [-1.0]).invalid == "empty"


def test_no_items_still_needs_an_engine_that_scores():
    assert log_prob_contrasts(ScriptedEngine(lambda *_: "", scorer=lambda *_: [0.0]), []) == []
    with pytest.raises(EngineError, match="cannot score"):
        log_prob_contrasts(object(), [])


@pytest.mark.vllm
def test_contrast_on_the_tiny_model_matches_a_plain_forward_pass(scoring_engine, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    pos = [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "Greet me."}]
    neg = [{"role": "system", "content": "You are rude."}, {"role": "user", "content": "Greet me."}]
    reply = "Hello there, nice to meet you."
    (got,) = log_prob_contrasts(scoring_engine, [(pos, neg, reply)])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.float32)
    tail = scoring_engine.tokenizer.encode(reply, add_special_tokens=False)

    def mean_logprob(conv) -> float:
        head = scoring_engine._to_vllm_prompt(conv)["prompt_token_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([head + tail])).logits[0].float().log_softmax(-1)
        return sum(logits[len(head) + k - 1, t].item() for k, t in enumerate(tail)) / len(tail)

    expected_pos, expected_neg = mean_logprob(pos), mean_logprob(neg)
    assert got.tokens == len(tail) > 3
    # vLLM runs the weights in bf16 here; the tolerance is the forward-pass test's own
    assert got.mean_positive == pytest.approx(expected_pos, abs=0.05)
    assert got.mean_negative == pytest.approx(expected_neg, abs=0.05)
    assert got.value == pytest.approx(expected_pos - expected_neg, abs=0.05)
    assert got.value == got.mean_positive - got.mean_negative
