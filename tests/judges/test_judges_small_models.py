"""Judges for small models: guided outputs, position-bias calibration, the self-check, expected scores.

Logic tests use a scripted judge whose first-position bias and signal are known, so the calibrated
labels can be computed by hand; the real-model tests run the shipped few-shot templates on the
tiny model through vLLM's guided decoding.
"""

from __future__ import annotations

import doctest
import math
import random
import re

import pytest
from judges_testlib import choice_completion
from pydantic import ValidationError

import rlaif.judges.calibration as calibration
from rlaif.engines.base import Sampling
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import TemplateError
from rlaif.judges import PairwiseJudge, PointwiseJudge, from_template, load_judge
from rlaif.judges.eval import EvalPair, run_judge_eval, split_pairs
from rlaif.judges.pairwise import JudgeUnreliableError
from rlaif.prompts import load_template
from rlaif.records import Message

PROMPT = [Message(role="user", content="How should I answer my neighbour?")]


def reply_shown(text: str, letter: str) -> str:
    """The reply a ``pairwise_fewshot`` prompt shows as ``letter`` in the real case (not the examples)."""
    case = text.rsplit("Now the real case.", 1)[1]
    return re.search(rf"^Reply {letter}: (.*)$", case, re.M).group(1)


def biased_judge(bias_logit: float, signal: float, noise_seed: int | None = None):
    """P(first shown better) = sigmoid(s + bias), s = +signal if the first reply is 'good ...'."""

    def respond(conv, i, sampling):
        first = reply_shown(conv[-1].content, "A")
        s = signal if first.startswith("good") else -signal
        if noise_seed is not None:
            s = random.Random(f"{noise_seed}{conv[-1].content}").gauss(0, 3)
        p = 1 / (1 + math.exp(-(s + bias_logit)))
        return choice_completion({"A": p, "B": 1 - p})

    return ScriptedEngine(respond, guided_json=True)


def items(n: int):
    # Half the pairs show the good reply as response_a, half as response_b.
    return [
        (PROMPT, f"good reply {k}", f"bad reply {k}")
        if k % 2
        else (PROMPT, f"bad reply {k}", f"good reply {k}")
        for k in range(n)
    ]


def test_calibration_doctests():
    result = doctest.testmod(calibration)
    assert result.attempted > 0 and result.failed == 0


def test_calibration_removes_a_constant_first_position_bias():
    data = items(40)
    raw = from_template(
        PairwiseJudge, biased_judge(3.0, 1.0), "pairwise_fewshot", calibrate=False, self_check="off"
    )
    raw_results = raw.compare(data)
    assert all(r.consistent is False for r in raw_results)  # every order names the first reply
    cal = from_template(PairwiseJudge, biased_judge(3.0, 1.0), "pairwise_fewshot")  # template: calibrate on
    assert cal.calibrate and cal.guided and cal.self_check_mode == "refuse"
    results = cal.compare(data)
    good_is_a = [a.startswith("good") for _, a, _ in data]
    assert all(r.consistent for r in results)
    assert all((r.prob_a > 0.5) == g for r, g in zip(results, good_is_a, strict=True))
    # (logit_AB - logit_BA) / 2 = signal exactly, whatever the bias
    assert all(
        abs(r.prob_a - (1 / (1 + math.exp(-1.0)) if g else 1 / (1 + math.exp(1.0)))) < 1e-3
        for r, g in zip(results, good_is_a, strict=True)
    )
    bias = results[0].judgments[0].metadata["first_position_bias_logit"]
    assert abs(bias - 3.0) < 1e-3
    assert cal.last_self_check.passed is True


def test_single_order_subtracts_the_batch_bias():
    data = items(40)
    judge = from_template(
        PairwiseJudge, biased_judge(2.0, 1.0), "pairwise_fewshot", both_orders=False, self_check="off"
    )
    results = judge.compare(data)
    assert all((r.prob_a > 0.5) == a.startswith("good") for r, (_, a, _) in zip(results, data, strict=True))


def test_self_check_refuses_or_raises_when_order_agreement_is_at_chance():
    data = items(60)
    judge = from_template(PairwiseJudge, biased_judge(0.0, 0.0, noise_seed=1), "pairwise_fewshot")
    results = judge.compare(data)
    assert judge.last_self_check.passed is False
    assert all(not r.valid and r.prob_a is None for r in results)
    assert all(
        j.status == "invalid" and "not above chance" in j.invalid_reason for r in results for j in r.judgments
    )
    assert all("refused_label" in j.metadata for r in results for j in r.judgments)
    with pytest.raises(JudgeUnreliableError, match="not above chance"):
        from_template(
            PairwiseJudge, biased_judge(0.0, 0.0, noise_seed=1), "pairwise_fewshot", self_check="error"
        ).compare(data)
    measured = from_template(
        PairwiseJudge, biased_judge(0.0, 0.0, noise_seed=1), "pairwise_fewshot", self_check="off"
    )
    assert all(r.valid for r in measured.compare(data)) and measured.last_self_check.passed is False
    small = from_template(PairwiseJudge, biased_judge(0.0, 0.0, noise_seed=1), "pairwise_fewshot").compare(
        data[:8]
    )
    assert all(r.valid for r in small)  # too few pairs to tell: labels kept, check says None


def test_guided_choice_is_requested_only_from_engines_that_support_it():
    guided = from_template(PairwiseJudge, biased_judge(0.0, 1.0), "pairwise_fewshot")
    assert guided.sampling.choice == ["A", "B"] and guided.sampling.logprobs == 20
    plain = from_template(PairwiseJudge, ScriptedEngine(lambda c, i, s: "A"), "pairwise_fewshot")
    assert plain.sampling.choice is None
    off = from_template(PairwiseJudge, biased_judge(0.0, 1.0), "pairwise_fewshot", guided=False)
    assert off.sampling.choice is None
    default = PairwiseJudge(biased_judge(0.0, 1.0))  # the shipped plain template keeps its old behaviour
    assert default.sampling.choice is None and not default.calibrate and default.self_check_mode == "off"


def test_template_judge_options_are_validated(tmp_path):
    path = tmp_path / "bad.j2"
    path.write_text(
        "---\nname: bad\nvariables: [prompt, response_a, response_b]\nparser: {type: choice, labels: [A, B]}\n"
        "metadata: {judge_options: {calibrate: true, shout: 1}}\n---\n{{ prompt }} {{ response_a }} {{ response_b }}\n"
    )
    with pytest.raises(
        TemplateError, match=r"judge_options: a pairwise judge does not take option\(s\) shout"
    ):
        load_judge(str(path), biased_judge(0.0, 1.0))


def test_sampling_takes_one_output_constraint():
    with pytest.raises(ValidationError, match="at most one output constraint"):
        Sampling(choice=["A", "B"], regex="A|B")


def test_rubric_fewshot_reads_an_expected_score():
    def respond(conv, i, sampling):
        assert sampling.regex == "Score: [0-5]" and sampling.logprobs == 20
        good = "boil" in conv[-1].content.rsplit("Now rate this one.", 1)[1]
        dist = {"4": 0.6, "5": 0.3, "x": 0.1} if good else {"1": 0.5, "0": 0.3, "2": 0.2}
        return choice_completion(dist, prefix=["Score", ": "])

    judge = from_template(
        PointwiseJudge, ScriptedEngine(respond, guided_json=True), "rubric_fewshot", samples=1
    )
    res = judge.score([(PROMPT, "boil it for 8 minutes"), (PROMPT, "no")])
    assert res[0].mean_score == pytest.approx((4 * 0.6 + 5 * 0.3) / 0.9)
    assert res[1].mean_score == pytest.approx(0.5 + 0.4)
    assert res[0].judgments[0].metadata["parse"]["greedy_score"] == 4.0


def test_split_halves_are_disjoint_and_cover_the_pairs():
    pairs = [EvalPair(id=str(k), line=k, prompt=PROMPT, chosen="x", rejected="y") for k in range(200)]
    tune, held = split_pairs(pairs, "tune", 13), split_pairs(pairs, "eval", 13)
    assert {p.id for p in tune}.isdisjoint({p.id for p in held}) and len(tune) + len(held) == 200
    assert 70 < len(tune) < 130
    assert [p.id for p in split_pairs(pairs, "tune", 14)] != [p.id for p in tune]


def test_judge_eval_reports_agreement_ci_and_self_check():
    pairs = [
        EvalPair(id=str(k), line=k, prompt=PROMPT, chosen=f"good reply {k}", rejected=f"bad reply {k}")
        for k in range(40)
    ]
    summary = run_judge_eval(from_template(PairwiseJudge, biased_judge(3.0, 1.0), "pairwise_fewshot"), pairs)
    assert summary["agreement"] == 1.0 and summary["position_consistency"] == 1.0
    lo, hi = summary["agreement_ci95"]
    assert 0.9 < lo < 1.0 and hi == 1.0
    assert summary["self_check"]["passed"] is True and summary["self_check"]["pairs_with_both_orders"] == 40


# -- the real thing: vLLM guided decoding on the tiny model ----------------------------------------
@pytest.mark.vllm
def test_guided_choice_and_regex_on_the_real_model(vllm_engine):
    prompts = [[{"role": "user", "content": f"Question {k}: which one?"}] for k in range(6)]
    choice = vllm_engine.generate(prompts, Sampling(temperature=1.0, seed=1, max_tokens=4, choice=["A", "B"]))
    assert all(c[0].text in ("A", "B") for c in choice)
    scored = vllm_engine.generate(
        prompts, Sampling(temperature=1.0, seed=1, max_tokens=8, regex="Score: [0-5]")
    )
    assert all(re.fullmatch(r"Score: [0-5]", c[0].text) for c in scored)


@pytest.mark.vllm
def test_fewshot_judges_are_always_readable_on_the_real_model(vllm_engine):
    data = items(24)
    judge = load_judge("pairwise_fewshot", vllm_engine, self_check="off")
    results = judge.compare(data)
    assert all(j.status == "ok" and j.raw_output in ("A", "B") for r in results for j in r.judgments)
    assert all(r.valid and 0.0 <= r.prob_a <= 1.0 for r in results)
    assert all("first_position_bias_logit" in r.judgments[0].metadata for r in results)
    rubric = load_judge("rubric_fewshot", vllm_engine, samples=1)
    scores = rubric.score([(PROMPT, a) for _, a, _ in data[:8]])
    assert all(s.n_valid == 1 and 0.0 <= s.mean_score <= 5.0 for s in scores)
    assert all(re.fullmatch(r"Score: [0-5]", s.judgments[0].raw_output) for s in scores)
    assert load_template("rubric_fewshot").metadata["judge_options"]["expected_score"] is True


SCORERS = """
def length_score(prompts, responses):
    return [None if r == "skip" else float(min(len(r), 5)) for r in responses]


def longer(prompts, responses_a, responses_b):
    return [1.0 if len(a) > len(b) else 0.0 for a, b in zip(responses_a, responses_b)]
"""


def test_cli_responses_validity_and_split(tmp_path, monkeypatch, capsys):
    import json

    from rlaif.cli import main

    def judge_eval(*args: str) -> dict:
        """``rlaif judge-eval`` in-process: exit 0, and its summary from stdout."""
        assert main(["judge-eval", *args]) == 0
        return json.loads(capsys.readouterr().out)

    (tmp_path / "small_scorers.py").write_text(SCORERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [
        {
            "prompt_index": 0,
            "prompt": [{"role": "user", "content": "hi"}],
            "completions": [{"text": "hello"}, {"text": "skip"}],
        },
        {"prompt_index": 1, "prompt": "plain", "completions": [{"text": "abc"}]},
    ]
    responses = tmp_path / "answers.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "v.jsonl"
    summary = judge_eval(
        "--responses", str(responses), "--judge", "small_scorers:length_score", "--out", str(out)
    )
    assert (summary["responses"], summary["judgments_valid"], summary["valid_rate"]) == (
        3,
        2,
        round(2 / 3, 6),
    )
    assert summary["mean_score"] == 4.0 and summary["invalid_reasons"] == {
        "the judge function returned None": 1
    }
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": "q", "chosen": "long " * (k + 2), "rejected": "s"}) + "\n"
            for k in range(30)
        )
    )
    longer = ("--pairs", str(pairs), "--judge", "small_scorers:longer")
    held = judge_eval(*longer, "--split", "eval", "--out", str(out))
    tune = judge_eval(*longer, "--split", "tune", "--out", str(out))
    assert held["n"] + tune["n"] == 30 and held["split"] == {"half": "eval", "seed": 13}
    assert held["agreement"] == 1.0 and held["agreement_ci95"][1] == 1.0
    assert main(["judge-eval", "--pairs", str(pairs), "--responses", str(responses), "--judge", "x:y"]) == 2
    assert (
        main(["judge-eval", "--pairs", str(pairs), "--judge", "small_scorers:longer", "--split", "half"]) == 2
    )
    assert "--split must be one of" in capsys.readouterr().err


def test_openai_engine_sends_choice_and_regex_as_vllm_structured_outputs():
    from rlaif.engines.openai import OpenAIEngine

    engine = OpenAIEngine.__new__(OpenAIEngine)  # request building only: no server needed
    engine.model_name, engine.vllm_extensions = "m", True
    _, body = engine._body("hi", Sampling(choice=["A", "B"]))
    assert body["structured_outputs"] == {"choice": ["A", "B"]}
    _, body = engine._body([{"role": "user", "content": "x"}], Sampling(regex="Score: [0-5]"))
    assert body["structured_outputs"] == {"regex": "Score: [0-5]"}
    _, body = engine._body("hi", Sampling())
    assert "structured_outputs" not in body
