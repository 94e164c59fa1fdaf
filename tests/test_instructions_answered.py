"""Does a reply answer its request at all? The literal guard beside the instruction checker: replies
made only of what the instruction asks for (a title, a closing phrase, the opening word) or that never
touch the request do not count as answers, real answers do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif.instructions import MIN_ANSWER_WORDS, answer_body, answers_request, check, request_words

SHIPPED = Path(__file__).resolve().parents[1] / "prompts" / "instructions"

MOON = "Describe the moon."


@pytest.mark.parametrize(
    "reply, specs",
    [
        ("<<the moon: my story>>", [{"kind": "title", "value": None}]),
        ("Thank you.", [{"kind": "ends_with", "value": "Thank you."}]),
        ("SmolLM", [{"kind": "max_words", "value": 10}]),
        ("Sure. <<moon>> That is all.", [{"kind": "ends_with", "value": "That is all."}]),
        ("Well <<my moon>> moon moon", [{"kind": "starts_with", "value": "Well"}]),
        ("I'm here to help you with whatever you need today.", [{"kind": "no_commas", "value": None}]),
    ],
)
def test_replies_that_follow_the_instruction_without_answering_are_not_answers(reply, specs):
    assert all(check(reply, s) for s in specs)  # the checker alone passes them
    assert not answers_request(reply, MOON, specs)


@pytest.mark.parametrize(
    "reply, specs",
    [
        (
            "<<The Moon>>\nThe moon is a bright rock that circles the Earth.",
            [{"kind": "title", "value": None}],
        ),
        (
            "Moonlight is sunlight bounced off grey dust. Thank you.",
            [{"kind": "ends_with", "value": "Thank you."}],
        ),
        ("- it glows at night\n- the moon has craters", [{"kind": "bullets", "value": 2}]),
        ('"The moons of Jupiter are larger than ours."', [{"kind": "quoted", "value": None}]),
    ],
)
def test_real_answers_are_answers(reply, specs):
    assert answers_request(reply, MOON, specs)


def test_the_instructions_text_does_not_count_toward_the_answer():
    specs = [{"kind": "starts_with", "value": "Sure"}, {"kind": "ends_with", "value": "Have a nice day."}]
    assert answer_body("Sure the moon is bright. Have a nice day.", specs).split() == [
        "the",
        "moon",
        "is",
        "bright.",
    ]
    # four words of its own are one too few, whatever the instruction added
    assert MIN_ANSWER_WORDS == 5
    assert not answers_request("Sure the moon is bright. Have a nice day.", MOON, specs)
    assert answers_request("Sure the moon is very bright. Have a nice day.", MOON, specs)


def test_request_words_skip_short_and_stop_words_and_match_by_stem():
    assert request_words("Explain why people need sleep.") == ["people", "need", "sleep"]
    assert request_words("Tell me about the sun.") == ["sun"]
    assert answers_request("Sleeping well lets the body repair itself.", "Explain why people need sleep.")
    assert not answers_request("Cats are soft and they purr a lot.", "Explain why people need sleep.")
    # a request with no content word asks only for enough words
    assert request_words("Tell me more.") == []
    assert answers_request("Here are a few more things.", "Tell me more.")


def test_every_shipped_held_out_request_has_content_words():
    for name in ("heldout.jsonl", "heldout_paraphrased.jsonl"):
        for line in (SHIPPED / name).read_text().splitlines():
            record = json.loads(line)
            assert request_words(record["task"]), record["id"]
