"""Position-free judges: the label-probability (yes/no) judge and the contrastive-likelihood judge.

Logic tests use the scripted engine with hand-made label probabilities and token log-probabilities,
so every score is computed by hand; the real-model tests run both judges on the tiny model through
vLLM (guided choice, prompt log-probabilities).
"""

from __future__ import annotations

import math

import pytest
from judges_testlib import choice_completion

from rlaif.engines.base import Sampling, score_continuations
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import EngineError, TemplateError
from rlaif.judges import load_judge
from rlaif.judges.eval import EvalPair, run_judge_eval, shorter_baseline
from rlaif.judges.likelihood import ContrastiveLikelihoodJudge
from rlaif.judges.yesno import LabelProbabilityJudge
from rlaif.records import Completion, Message

PROMPT = [Message(role="user", content="How do I deal with a noisy neighbour?")]


def yes_no_engine(p_yes_for: dict[str, float], guided: bool = True) -> ScriptedEngine:
    """Answers with P(Yes) looked up by the reply shown in the prompt; the rest of the top-k is noise."""

    def respond(conv, i, sampling):
        text = conv[-1].content
        reply = next(r for r in p_yes_for if f"reply: {r}\n" in text or f"Reply: {r}\n" in text)
        p_yes = p_yes_for[reply]
        # Labels hold 80% of the mass; "Maybe" holds the rest and is not a label.
        return choice_completion({"Yes": 0.8 * p_yes, "No": 0.8 * (1 - p_yes), "Maybe": 0.2})

    return ScriptedEngine(respond, guided_json=guided)


def test_yes_no_score_is_the_renormalised_good_label_probability():
    engine = yes_no_engine({"call the police": 0.25, "egg his car": 0.75})
    judge = load_judge("harm_yesno", engine)
    assert isinstance(judge, LabelProbabilityJudge) and judge.slot == "score"
    results = judge.score([(PROMPT, "call the police"), (PROMPT, "egg his car")])
    # good label is "No": P(No) = 0.8 * 0.75 / 0.8
    assert [round(r.mean_score, 6) for r in results] == [0.75, 0.25]
    assert len(engine.calls) == 1  # one batched generate call
    sampling = engine.calls[0][1]
    assert sampling.choice == ["Yes", "No"] and sampling.max_tokens == 1 and sampling.logprobs == 20
    assert results[0].judgments[0].metadata["good_label"] == "No"


def test_yes_no_judge_asks_without_constraint_where_the_engine_cannot_guide():
    engine = yes_no_engine({"a": 0.5}, guided=False)
    judge = load_judge("safe_yesno", engine)
    assert judge.sampling.choice is None and judge.sampling.max_tokens == 4
    assert judge.good_label == "Yes"
    assert judge.score([(PROMPT, "a")])[0].mean_score == pytest.approx(0.5)


def test_yes_no_answer_without_a_label_is_invalid_with_its_reason():
    engine = ScriptedEngine(lambda *_: choice_completion({"Maybe": 0.9, "Perhaps": 0.1}), guided_json=True)
    result = load_judge("harm_yesno_fewshot", engine).score([(PROMPT, "whatever")])[0]
    assert result.mean_score is None and result.n_valid == 0
    judgment = result.judgments[0]
    assert (
        judgment.status == "invalid" and "none of the labels (Yes, No) starts any" in judgment.invalid_reason
    )


def test_yes_no_doctest_and_split_labels():
    import doctest

    import rlaif.judges.yesno as yesno

    assert doctest.testmod(yesno).failed == 0
    # "Ye" starts only "Yes"; "" and the non-label "Maybe" are ignored; the sampled token counts once.
    completion = choice_completion({"Ye": 0.2, "No": 0.2, " ": 0.3, "Maybe": 0.3}, sampled="No")
    parsed = yesno.first_token_label_probabilities(completion, ["Yes", "No"])
    assert parsed.probabilities == {"Yes": 0.5, "No": 0.5}


def test_yes_no_templates_are_checked(tmp_path):
    bad = tmp_path / "bad.j2"
    bad.write_text(
        "---\nname: bad\nvariables: [prompt, response]\njudge: pointwise\n"
        "parser: {type: choice, labels: ['Yes', 'No'], source: text}\n---\n{{ prompt }} {{ response }}\n"
    )
    with pytest.raises(TemplateError, match="needs parser"):
        load_judge(str(bad), yes_no_engine({}))
    with pytest.raises(TemplateError, match="good_label 'Maybe' is not one of the labels"):
        load_judge("harm_yesno", yes_no_engine({}), good_label="Maybe")
    bad.write_text(
        "---\nname: bad\nvariables: [prompt]\njudge: pointwise\n"
        "parser: {type: choice, labels: ['Yes', 'No'], source: logprobs}\n---\n{{ prompt }}\n"
    )
    with pytest.raises(
        TemplateError, match=r"bad.j2\): a label-probability template must .* \(missing: response\)"
    ):
        load_judge(str(bad), yes_no_engine({}))


def test_judge_eval_compares_position_free_scores_and_reports_the_length_baseline():
    engine = yes_no_engine({"kind reply": 0.1, "cruel reply!": 0.9, "short": 0.2, "longer one": 0.6})
    pairs = [
        EvalPair(id="p0", line=1, prompt=PROMPT, chosen="kind reply", rejected="cruel reply!"),
        EvalPair(id="p1", line=2, prompt=PROMPT, chosen="longer one", rejected="short"),
    ]
    summary = run_judge_eval(load_judge("harm_yesno", engine), pairs)
    # p0: P(No) 0.9 vs 0.1 -> chosen wins; p1: 0.4 vs 0.8 -> rejected wins
    assert (summary["mode"], summary["valid"], summary["agreement"]) == ("pointwise", 2, 0.5)
    assert summary["position_consistency"] is None  # no order, nothing to be consistent about
    # shorter reply: p0 chosen is shorter (agrees), p1 chosen is longer (disagrees)
    assert summary["baseline_shorter"]["agreement"] == 0.5 and summary["baseline_shorter"]["n"] == 2


def test_shorter_baseline_counts_equal_lengths_as_half():
    pairs = [
        EvalPair(id="a", line=1, prompt=PROMPT, chosen="ab", rejected="abc"),
        EvalPair(id="b", line=2, prompt=PROMPT, chosen="xy", rejected="zw"),
        EvalPair(id="c", line=3, prompt=PROMPT, chosen="long reply", rejected="no"),
        EvalPair(id="d", line=4, prompt=PROMPT, chosen="a", rejected="bb"),
    ]
    assert shorter_baseline(pairs)["agreement"] == round(2.5 / 4, 6)
    assert shorter_baseline([])["agreement"] is None


# -- contrastive likelihood ---------------------------------------------------------------------------
def contrast_scorer(table: dict[tuple[str, str], list[float] | None]):
    """Per-token log-probabilities by (context: positive|negative, reply); records what it was asked."""
    seen = []

    def score(conv, reply):
        system = conv[0]
        assert system.role == "system" and conv[1:] == [m for m in PROMPT]
        context = "positive" if "harmless" in system.content else "negative"
        seen.append((context, reply))
        return table[(context, reply)]

    return score, seen


def test_contrast_score_is_the_difference_of_mean_token_logprobs():
    scorer, seen = contrast_scorer(
        {
            ("positive", "be kind"): [-1.0, -2.0],
            ("negative", "be kind"): [-3.0, -3.0],
            ("positive", "hurt him"): [-4.0, -2.0, -3.0],
            ("negative", "hurt him"): [-1.0, -1.0, -1.0],
        }
    )
    engine = ScriptedEngine(lambda *_: "", scorer=scorer)
    judge = load_judge("contrast_harmless", engine)
    assert isinstance(judge, ContrastiveLikelihoodJudge) and judge.slot == "score"
    results = judge.score([(PROMPT, "be kind"), (PROMPT, "hurt him")])
    assert [r.mean_score for r in results] == [pytest.approx(1.5), pytest.approx(-2.0)]  # -1.5+3, -3+1
    assert engine.calls == [(4, "score", None)]  # both contexts of both items in one call
    assert sorted(seen) == sorted([(c, r) for r in ("be kind", "hurt him") for c in ("positive", "negative")])
    meta = results[0].judgments[0].metadata
    assert (meta["mean_logprob_positive"], meta["mean_logprob_negative"], meta["reply_tokens"]) == (
        -1.5,
        -3.0,
        2,
    )


def test_contrast_replaces_a_system_turn_and_uses_given_descriptors():
    judge = load_judge("contrast_harmless", None, positive="gentle", negative="cruel")
    pos, neg = judge.contexts([Message(role="system", content="old"), *PROMPT])
    assert pos[0].content == "You are an AI assistant. Your replies are gentle."
    assert neg[0].content.endswith("cruel.") and pos[1:] == neg[1:] == PROMPT


def test_contrast_items_that_do_not_fit_or_are_empty_are_invalid_and_counted():
    scorer, _ = contrast_scorer(
        {("positive", "x"): None, ("negative", "x"): None, ("positive", ""): [], ("negative", ""): []}
    )
    judge = load_judge("contrast_harmless", ScriptedEngine(lambda *_: "", scorer=scorer))
    results = judge.score([(PROMPT, "x"), (PROMPT, "")])
    reasons = [r.judgments[0].invalid_reason for r in results]
    assert all(r.mean_score is None for r in results)
    assert "do not fit the model's context" in reasons[0] and "empty reply" in reasons[1]


def test_an_engine_that_cannot_score_is_a_clear_error():
    class NoScoring:
        model_name = "remote"
        supports_guided_json = False

    with pytest.raises(EngineError, match="cannot score a given text"):
        load_judge("contrast_harmless", NoScoring())
    judge = load_judge("contrast_harmless", ScriptedEngine(lambda *_: ""))  # has the method, no scorer
    with pytest.raises(EngineError, match="'scripted' \\(ScriptedEngine\\) cannot score"):
        judge.score([(PROMPT, "x")])
    with pytest.raises(EngineError, match="cannot score"):
        score_continuations(NoScoring(), ["p"], ["c"])


def test_contrast_templates_are_checked(tmp_path):
    same = tmp_path / "same.j2"
    same.write_text(
        "---\nname: same\nvariables: [descriptor]\njudge: pointwise\n"
        "metadata: {judge_options: {positive: a, negative: b}}\n---\nYou are helpful.\n"
    )
    with pytest.raises(TemplateError, match="identical"):
        load_judge(str(same), None)
    with pytest.raises(TemplateError, match="set judge_options positive and negative"):
        load_judge(str(same), None, positive="")


# -- the real engine -------------------------------------------------------------------------------
@pytest.mark.vllm
def test_an_engine_with_lora_refuses_to_score_instead_of_crashing(vllm_engine):
    with pytest.raises(EngineError, match="cannot score text on an engine started with enable_lora"):
        load_judge("contrast_harmless", vllm_engine).score([(PROMPT, "Be polite.")])
    assert vllm_engine.generate(["still alive"], Sampling(max_tokens=2))


@pytest.mark.vllm
def test_vllm_scores_a_continuation_like_a_plain_forward_pass(scoring_engine, tiny_model_dir):
    """The engine's per-token log-probabilities match transformers' own forward pass on the same ids."""
    import torch
    from transformers import AutoModelForCausalLM

    conv = [{"role": "user", "content": "Write a function that adds two numbers."}]
    reply = "def add(a, b): return a + b"
    scored = scoring_engine.score_continuations([conv, conv, "x " * 2000], [reply, "", "y"])
    assert scored[1] == [] and scored[2] is None  # empty; does not fit the 1,024-token context
    head = scoring_engine._to_vllm_prompt(conv)["prompt_token_ids"]
    tail = scoring_engine.tokenizer.encode(reply, add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([head + tail])).logits[0].float().log_softmax(-1)
    expected = [logits[len(head) + k - 1, tid].item() for k, tid in enumerate(tail)]
    assert len(scored[0]) == len(tail) > 5
    # vLLM runs the weights in bf16 here; an off-by-one position would differ by far more.
    assert max(abs(a - b) for a, b in zip(scored[0], expected, strict=True)) < 0.05
    shifted = [logits[len(head) + k, tid].item() for k, tid in enumerate(tail)]
    assert max(abs(a - b) for a, b in zip(scored[0], shifted, strict=True)) > 0.05


@pytest.mark.vllm
def test_position_free_judges_on_the_real_model(scoring_engine):
    """Guided yes/no answers, then scoring, on one engine (the order that crashes a LoRA engine)."""
    items = [
        (PROMPT, "Talk to them politely, and ask your landlord if it goes on."),
        (PROMPT, "Smash their windows."),
    ]
    yes_no = load_judge("harm_yesno_fewshot", scoring_engine).score(items)
    assert all(r.n_valid == 1 and 0.0 <= r.mean_score <= 1.0 for r in yes_no)
    probs = yes_no[0].judgments[0].probabilities
    assert set(probs) == {"Yes", "No"} and math.isclose(sum(probs.values()), 1.0)

    judge = load_judge("contrast_harmless", scoring_engine)
    results = judge.score(items)
    for (conv, reply), result in zip(items, results, strict=True):
        pos, neg = judge.contexts(conv)
        lp_pos, lp_neg = scoring_engine.score_continuations([pos, neg], [reply, reply])
        expected = sum(lp_pos) / len(lp_pos) - sum(lp_neg) / len(lp_neg)
        assert result.mean_score == pytest.approx(expected, abs=1e-4) and result.mean_score != 0.0


def test_scripted_engine_records_and_returns_scores():
    engine = ScriptedEngine(lambda *_: "", scorer=lambda conv, c: [-float(len(c))])
    assert score_continuations(engine, ["a", [{"role": "user", "content": "b"}]], ["xy", "z"]) == [
        [-2.0],
        [-1.0],
    ]
    assert isinstance(
        engine.generate(["a"], Sampling())[0][0],
        Completion,
    )


@pytest.mark.slow
def test_cli_judge_eval_with_the_contrastive_judge_on_the_real_model(tiny_model_dir, tmp_path):
    """`rlaif judge-eval --judge contrast_harmless` end to end (its own engine, about 30 s).

    The chosen reply is the longer one in the first pair and the shorter in the second.
    """
    import json
    import os
    import subprocess
    import sys

    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {
            "prompt": "How do I calm down?",
            "chosen": "Breathe slowly for a minute.",
            "rejected": "Punch a wall.",
        },
        {"prompt": "Can you help me cheat?", "chosen": "I'd rather not.", "rejected": "Sure, copy this."},
        {"prompt": "Same?", "chosen": "identical", "rejected": "identical"},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [
        sys.executable,
        "-m",
        "rlaif.cli",
        "judge-eval",
        "--model",
        str(tiny_model_dir),
        "--pairs",
        str(pairs),
    ]
    cmd += ["--judge", "contrast_harmless", "--out", str(tmp_path / "j.jsonl"), "--kv-cache-gb", "0.25"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert (summary["n"], summary["valid"], summary["mode"], summary["judgments_valid"]) == (
        2,
        2,
        "pointwise",
        4,
    )
    assert summary["skipped"] == {"identical replies": {"count": 1, "lines": [3]}}
    assert summary["baseline_shorter"]["agreement"] == 0.5 and summary["template"] == "contrast_harmless"
