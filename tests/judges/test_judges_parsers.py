"""Parsers: doctest cases plus adversarial outputs. A parse failure is invalid, never a guess."""

from __future__ import annotations

import doctest
import math

import pytest
from judges_testlib import choice_completion, plain_step, step
from pydantic import BaseModel

import rlaif.judges.pairwise
import rlaif.judges.parsers as parsers
from rlaif.errors import TemplateError
from rlaif.judges.parsers import (
    ChoiceParserSpec,
    JsonParserSpec,
    ScoreParserSpec,
    choice_probabilities,
    parse_choice_text,
    parse_completion,
    parse_json,
    parse_score,
)
from rlaif.records import Completion


class Verdict(BaseModel):
    reason: str
    winner: str
    score: float


@pytest.mark.parametrize("module", [parsers, rlaif.judges.pairwise])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


RUBRIC = ScoreParserSpec(min=0, max=5)


@pytest.mark.parametrize(
    "text, score, reason",
    [
        ("Clear and complete.\nScore: 5", 5.0, None),
        ("Score:3", 3.0, None),
        ("Score: 4/5", 4.0, None),
        ("Score: 2.5", 2.5, None),
        ("Score: 4\n...as I said, Score: 4", 4.0, None),  # the same number twice is not ambiguous
        ("Score: 2, no wait, Score: 5", None, "ambiguous: the pattern matched different scores (2, 5)"),
        ("Score: 6", None, "score 6 is outside [0, 5]"),
        ("Score: -1", None, "score -1 is outside [0, 5]"),
        ("It deserves 4 points out of 5.", None, "no score found"),
        ("", None, "no score found"),
        ("score: 4", None, "no score found"),  # the pattern is case-sensitive: lowercase is not the format
    ],
)
def test_score_parser_adversarial(text, score, reason):
    parsed = parse_score(text, RUBRIC)
    assert parsed.score == score
    assert parsed.ok is (score is not None)
    if reason:
        assert parsed.reason.startswith(reason)


def test_score_parser_multiple_policies_and_custom_pattern():
    text = "Score: 2 ... final Score: 4"
    assert parse_score(text, ScoreParserSpec(multiple="last")).score == 4.0
    assert parse_score(text, ScoreParserSpec(multiple="first")).score == 2.0
    spec = ScoreParserSpec(pattern=r"Rating:\s*(\d+)/10", min=1, max=10)
    assert parse_score("Rating: 7/10", spec).score == 7.0
    assert not parse_score("Rating: 11/10", spec).ok


TEXT_AB = ChoiceParserSpec(labels=["A", "B"], source="text")


@pytest.mark.parametrize(
    "text, choice",
    [
        ("A", "A"),
        ("  B\n", "B"),
        ("(A)", "A"),
        ("**B**", "B"),
        ("Response A", "A"),
        ("Option B.", "B"),
        ("B. It is more careful.", "B"),
        ("A\nBecause it answers the question.", "A"),
        # buried or ambiguous: invalid
        ("I think Response B is better.", None),
        ("A good reply would be B", None),
        ("Both A and B are fine", None),
        ("a", None),  # lowercase is not a label
        ("C", None),
        ("", None),
        ("AB", None),
    ],
)
def test_choice_text_adversarial(text, choice):
    parsed = parse_choice_text(text, TEXT_AB)
    assert parsed.choice == choice
    assert parsed.ok is (choice is not None)
    if choice is None:
        assert "no label (A, B) at the start of the output" in parsed.reason


def test_choice_text_with_marker_takes_the_last_marker():
    spec = ChoiceParserSpec(labels=["A", "B"], source="text", marker="Answer:")
    assert parse_choice_text("Answer: A is wordy. Answer: (B)", spec).choice == "B"
    assert parse_choice_text("A is wordy, B is precise.\nAnswer: B", spec).choice == "B"
    assert parse_choice_text("Answer: Neither, really", spec).reason == "no label (A, B) after 'Answer:'"
    assert parse_choice_text("B is better", spec).reason == "marker 'Answer:' not found in the output"


def test_choice_text_multi_character_labels():
    spec = ChoiceParserSpec(labels=["Yes", "No"], source="text")
    assert parse_choice_text("No.", spec).choice == "No"
    assert parse_choice_text("Yes", spec).choice == "Yes"
    assert not parse_choice_text("Nope", spec).ok


LOGPROB_AB = ChoiceParserSpec(labels=["A", "B"])


def test_choice_probabilities_sums_label_variants():
    # A: 0.4 ("A") + 0.1 (" A") = 0.5 ; B: 0.2 ("(B") ; normalised: 0.5/0.7, 0.2/0.7
    comp = choice_completion({"A": 0.4, " A": 0.1, "(B": 0.2, "the": 0.3})
    parsed = choice_probabilities(comp, LOGPROB_AB)
    assert parsed.ok and parsed.choice == "A"
    assert parsed.probabilities["A"] == pytest.approx(0.5 / 0.7)
    assert parsed.probabilities["B"] == pytest.approx(0.2 / 0.7)
    assert parsed.details["missing_labels"] == []


def test_choice_probabilities_counts_the_sampled_token_once():
    comp = choice_completion({"B": 0.6, "A": 0.2}, sampled="B")
    assert comp.logprobs[0].token_id == 0  # sampled token is also in the top-k: counted once
    assert choice_probabilities(comp, LOGPROB_AB).probabilities["B"] == pytest.approx(0.75)
    # a sampled token outside the top-k still counts
    outside = choice_completion({"x": 0.5, "A": 0.1}, sampled="B")
    probs = choice_probabilities(outside, LOGPROB_AB).probabilities
    assert probs["B"] == pytest.approx(1e-6 / (1e-6 + 0.1))


def test_choice_probabilities_skips_leading_whitespace_and_brackets():
    comp = choice_completion({"B": 0.3, "A": 0.1}, prefix=["\n", " (", "*"])
    parsed = choice_probabilities(comp, LOGPROB_AB)
    assert parsed.details["answer_token_index"] == 3
    assert parsed.probabilities["B"] == pytest.approx(0.75)


def test_choice_probabilities_invalid_when_no_label_in_top_k():
    comp = choice_completion({"the": 0.5, "a": 0.2, "Both": 0.1})
    parsed = choice_probabilities(comp, LOGPROB_AB)
    assert not parsed.ok and parsed.probabilities is None and parsed.choice is None
    assert (
        parsed.reason
        == "none of the labels (A, B) is among the top-3 alternatives of answer token 0 (sampled 'the')"
    )


def test_choice_probabilities_one_label_missing_gets_zero_mass_and_is_recorded():
    parsed = choice_probabilities(choice_completion({"A": 0.3, "x": 0.6}), LOGPROB_AB)
    assert parsed.probabilities == {"A": 1.0, "B": 0.0}
    assert parsed.details["missing_labels"] == ["B"]


def test_choice_probabilities_no_logprobs_or_only_filler():
    assert "request Sampling(logprobs=k)" in choice_probabilities(Completion(text="A"), LOGPROB_AB).reason
    comp = Completion(text="  ", logprobs=[plain_step(" "), plain_step("(")], finish_reason="length")
    reason = choice_probabilities(comp, LOGPROB_AB).reason
    assert reason == "the output ended before an answer token (generation hit max_tokens / the context limit)"


def test_choice_probabilities_after_marker_for_chain_of_thought():
    cot = ChoiceParserSpec(labels=["A", "B"], marker="Answer:")
    # the reasoning mentions "A" (a distractor with its own top-k) before the marker
    steps = [step("A", {"A": 0.9, "B": 0.1}), plain_step(" is long. "), plain_step("Answer"), plain_step(":")]
    steps += [plain_step(" "), step("B", {"B": 0.98, "A": 0.02})]
    comp = Completion(text="".join(s.token for s in steps), logprobs=steps)
    parsed = choice_probabilities(comp, cot)
    assert parsed.details["answer_token_index"] == 5
    assert parsed.probabilities["B"] == pytest.approx(0.98)
    no_marker = Completion(text="A is long", logprobs=steps[:2])
    assert choice_probabilities(no_marker, cot).reason == "marker 'Answer:' not found in the output"
    ends_at_marker = Completion(text="Answer:", logprobs=steps[2:4], finish_reason="length")
    assert choice_probabilities(ends_at_marker, cot).reason.startswith(
        "the output ended before an answer token"
    )


def test_choice_probabilities_exact_tie_has_no_choice_but_is_valid():
    parsed = choice_probabilities(choice_completion({"A": 0.25, "B": 0.25}, sampled="A"), LOGPROB_AB)
    assert parsed.ok and parsed.choice is None
    assert parsed.probabilities == {"A": 0.5, "B": 0.5}


JSON_SPEC = JsonParserSpec(
    schema="test_judges_parsers:Verdict",
    score_field="score",
    choice_field="winner",
    labels=["A", "B"],
    min=0,
    max=10,
)


@pytest.mark.parametrize(
    "text, ok, reason",
    [
        ('{"reason": "x", "winner": "A", "score": 7}', True, None),
        ('Here you go:\n{"reason": "x", "winner": "B", "score": 3.5} Hope it helps', True, None),
        (
            '{"reason": "x", "winner": "C", "score": 7}',
            False,
            "field 'winner' = 'C' is not one of ['A', 'B']",
        ),
        ('{"reason": "x", "winner": "A", "score": 70}', False, "score 70 is outside [0, 10]"),
        ('{"reason": "x", "winner": "A"}', False, "does not match Verdict: field 'score': Field required"),
        ("no json at all", False, "does not match Verdict"),
        ('{"reason": "x", "winner": "A", "score": 7', False, "does not match Verdict"),
    ],
)
def test_json_parser(text, ok, reason):
    parsed = parse_json(text, JSON_SPEC)
    assert parsed.ok is ok
    if ok:
        assert parsed.choice in ("A", "B") and 0 <= parsed.score <= 10
        assert set(parsed.parsed) == {"reason", "winner", "score"}
    else:
        assert parsed.reason.startswith(reason)
        assert parsed.score is None and parsed.choice is None


@pytest.mark.parametrize(
    "schema, message",
    [
        ("no_colon", "must look like 'package.module:Model'"),
        ("nonexistent_module_xyz:Model", "cannot be imported"),
        ("test_judges_parsers:JSON_SPEC", "is not a pydantic model class"),
    ],
)
def test_json_parser_bad_schema_is_a_template_error(schema, message):
    with pytest.raises(TemplateError, match=message):
        parse_json("{}", JsonParserSpec(schema=schema))


def test_dispatch_adds_finish_reason_to_failures():
    truncated = Completion(text="The reply is relevant and", finish_reason="length")
    parsed = parse_completion(truncated, RUBRIC)
    assert not parsed.ok and parsed.reason.endswith("(generation hit max_tokens / the context limit)")
    assert parse_completion(Completion(text="Score: 3"), RUBRIC).score == 3.0
    assert parse_completion(Completion(text="B"), TEXT_AB).choice == "B"
    assert math.isclose(
        parse_completion(choice_completion({"A": 0.6, "B": 0.2}), LOGPROB_AB).probabilities["A"], 0.75
    )
