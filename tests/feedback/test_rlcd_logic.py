"""RLCD logic with a scripted engine: prompt rewriting, batching, retries, drops, rescore decisions."""

from __future__ import annotations

import pytest
from fb_scripted import PerRequestScriptedEngine, call_source, choice_completion

from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError
from rlaif.feedback.rlcd import rlcd
from rlaif.records import Message, PromptRecord

AFFIXES = (
    "pairs:\n  - {positive: kind-one, negative: cruel-one}\n  - {positive: kind-two, negative: cruel-two}\n"
)


@pytest.fixture
def affix_file(tmp_path):
    path = tmp_path / "affixes.yaml"
    path.write_text(AFFIXES)
    return str(path)


def prompts() -> list[PromptRecord]:
    return [
        PromptRecord(id="chat1", messages=[Message(role="user", content="How do I fix a bike?")]),
        PromptRecord(
            id="chat2",
            messages=[Message(role="system", content="Be brief."), Message(role="user", content="Hi?")],
        ),
        PromptRecord(
            id="hh1",
            messages=[
                Message(role="user", content="q1"),
                Message(role="assistant", content="a1"),
                Message(role="user", content="q2"),
            ],
            metadata={"format": "hh_transcript"},
        ),
    ]


def whole(conv: list[Message]) -> str:
    return "\n".join(m.content for m in conv)


def kind_or_cruel(conv, i, sampling):
    text = whole(conv)
    tone = "nice" if "kind-" in text else "mean"
    return f"{tone} reply to {conv[-1].content[-12:]!r}\n\nHuman: this part is cut"


def test_one_call_identical_settings_and_only_the_affix_differs(affix_file):
    engine = PerRequestScriptedEngine(kind_or_cruel)
    result = call_source(rlcd, prompts(), engine, {"affixes": affix_file}, seed=3)
    assert len(engine.requests) == 1 and len(engine.requests[0]) == 6  # all positives and negatives, one call
    settings = [s for _, s in engine.requests[0]]
    unseeded = [s.model_copy(update={"seed": None}) for s in settings]
    assert all(s == unseeded[0] for s in unseeded)  # identical sampling settings for both sides
    assert len({s.seed for s in settings}) == 6  # every request has its own seed

    (pos1, _), (neg1, _) = engine.requests[0][0], engine.requests[0][1]
    # chat: a system note carries the descriptor; the conversation itself is untouched
    assert pos1[0].role == "system" and pos1[1:] == prompts()[0].messages
    assert [m.content for m in pos1[1:]] == [m.content for m in neg1[1:]]
    assert "kind-" in pos1[0].content and "cruel-" in neg1[0].content
    assert pos1[0].content.replace("kind", "cruel") == neg1[0].content
    # an existing system message gets the note appended
    pos2 = engine.requests[0][2][0]
    assert pos2[0].content.startswith("Be brief.\n\n") and len(pos2) == 2
    # transcript: the open assistant marker carries the descriptor, earlier markers do not
    pos3, neg3 = engine.requests[0][4][0], engine.requests[0][5][0]
    assert isinstance(pos3, str) and pos3.startswith(
        "Human: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant (kind-"
    )
    assert pos3.endswith("):") and neg3.split("Assistant (")[0] == pos3.split("Assistant (")[0]

    assert result.stats.prompts_in == 3 and result.stats.pairs_out == 3 and result.stats.balanced
    for pair, rec in zip(result.pairs, prompts(), strict=True):
        assert pair.prompt == rec.messages  # the pair keeps the original, unaffixed prompt
        assert pair.chosen.startswith("nice") and pair.rejected.startswith("mean")
        assert "Human:" not in pair.chosen  # cut at the next user-turn marker
        meta = pair.metadata
        assert meta["positive"].startswith("kind-") and meta["negative"] == meta["positive"].replace(
            "kind", "cruel"
        )
        assert meta["seeds"]["positive"] != meta["seeds"]["negative"]
        assert meta["prompt_id"] == rec.id and meta["model"] == "scripted"
    assert result.pairs[2].metadata["prompt_format"] == "transcript"


def test_tag_earlier_turns_and_last_user_placement(affix_file):
    engine = PerRequestScriptedEngine(kind_or_cruel)
    call_source(rlcd, prompts()[2:], engine, {"affixes": affix_file, "tag_earlier_turns": True})
    assert "Assistant (kind-" in engine.requests[0][0][0].split("Human: q2")[0]
    engine = PerRequestScriptedEngine(kind_or_cruel)
    call_source(rlcd, prompts()[:1], engine, {"affixes": affix_file, "chat_placement": "last_user"})
    pos = engine.requests[0][0][0]
    assert (
        len(pos) == 1 and pos[0].content.startswith("How do I fix a bike?\n\n") and "kind-" in pos[0].content
    )


def test_invalid_outputs_are_retried_in_one_batch_then_dropped(affix_file):
    engine = None

    def responder(conv, i, sampling):
        text = whole(conv)
        if "Hi?" in text and "cruel-" in text:
            return "   "  # this prompt's negative output is always empty
        if "cruel-" in text and len(engine.requests) == 1:
            return "\n\nHuman: nothing before the marker"  # empty after the cut, first attempt only
        return kind_or_cruel(conv, i, sampling)

    engine = PerRequestScriptedEngine(responder)
    result = call_source(rlcd, prompts(), engine, {"affixes": affix_file, "max_retries": 2})
    assert [len(r) for r in engine.requests] == [6, 3, 1]  # retries hold only the still-invalid requests
    assert result.stats.pairs_out == 2
    assert result.stats.drops == {"invalid_output": 1}
    assert result.dropped[0].prompt_id == "chat2" and "negative: empty" in result.dropped[0].detail
    assert result.stats.counters["rlcd_retried_requests"] == 4
    assert result.stats.counters["rlcd_invalid_empty"] == 5  # 3 on the first attempt, then chat2 twice more
    retried = {p.metadata["prompt_id"]: p.metadata["attempts"] for p in result.pairs}
    assert retried == {"chat1": {"positive": 1, "negative": 2}, "hh1": {"positive": 1, "negative": 2}}


def test_length_limit_makes_output_invalid(affix_file):
    engine = PerRequestScriptedEngine(lambda conv, i, s: "x" * (50 if "kind-" in whole(conv) else 5))
    result = call_source(
        rlcd, prompts()[:1], engine, {"affixes": affix_file, "max_retries": 0, "output": {"max_chars": 20}}
    )
    assert result.stats.drops == {"invalid_output": 1} and "positive: too_long" in result.dropped[0].detail


def test_affix_choice_and_sampling_are_deterministic_for_a_seed():
    many = [
        PromptRecord(id=f"p{i}", messages=[Message(role="user", content=f"question {i}")]) for i in range(40)
    ]

    def seeded(conv, i, s):
        return f"{'pos' if 'harmful' not in whole(conv) else 'neg'} {s.seed} {conv[-1].content}"

    first = call_source(rlcd, many, PerRequestScriptedEngine(seeded), {}, seed=7)
    again = call_source(rlcd, many, PerRequestScriptedEngine(seeded), {}, seed=7)
    other = call_source(rlcd, many, PerRequestScriptedEngine(seeded), {}, seed=8)
    assert [p.model_dump() for p in first.pairs] == [p.model_dump() for p in again.pairs]
    picks = [p.metadata["affix_index"] for p in first.pairs]
    assert len(set(picks)) > 5  # 16 harmlessness pairs, drawn per prompt
    assert picks != [p.metadata["affix_index"] for p in other.pairs]
    # a prompt's result does not depend on the prompts after it
    head = call_source(rlcd, many[:3], PerRequestScriptedEngine(seeded), {}, seed=7)
    assert [p.model_dump() for p in head.pairs] == [p.model_dump() for p in first.pairs[:3]]


def test_rescore_keeps_flips_and_drops_by_threshold(affix_file):
    # P(the "nice" reply is better), per prompt: keep (0.8), flip (0.1 -> 0.9 for the negative), uncertain (0.55)
    belief = {"How do I fix a bike?": 0.8, "Hi?": 0.1, "q2": 0.55}

    def judge(conv, i, sampling):
        text = conv[-1].content
        first = text.split("<response_a>")[1].split("</response_a>")[0]
        q = next(v for k, v in belief.items() if k in text.split("<conversation>")[1])
        return choice_completion(q if "nice" in first else 1 - q)

    judge_engine = ScriptedEngine(judge, model_name="judge")
    result = call_source(
        rlcd,
        prompts(),
        PerRequestScriptedEngine(kind_or_cruel),
        {"affixes": affix_file, "rescore": {"threshold": 0.7}},
        judge_engine=judge_engine,
    )
    assert len(judge_engine.calls) == 1 and judge_engine.calls[0][0] == 6  # 3 pairs x both orders, one call
    assert result.stats.drops == {"rescore_uncertain": 1} and result.stats.counters["rescore_flipped"] == 1
    keep, flip = result.pairs
    assert keep.chosen.startswith("nice") and keep.soft_label == pytest.approx(0.8)
    assert keep.margin == pytest.approx(0.6) and keep.metadata["rescore"]["action"] == "keep"
    assert flip.chosen.startswith("mean") and flip.soft_label == pytest.approx(0.9)
    assert flip.margin == pytest.approx(0.8) and flip.metadata["chosen_side"] == "negative"
    assert len(keep.judgment_ids) == 2 and set(keep.judgment_ids) <= {j.id for j in result.judgments}
    assert len(result.judgments) == 6


def test_rescore_invalid_judgment_drops_the_pair(affix_file):
    judge_engine = ScriptedEngine(lambda conv, i, s: "no idea")  # no logprobs: unreadable
    result = call_source(rlcd, prompts()[:1], PerRequestScriptedEngine(kind_or_cruel), {"affixes": affix_file, "rescore": {}},
                  judge_engine=judge_engine)  # fmt: skip
    assert result.stats.drops == {"rescore_invalid": 1} and result.pairs == []
    assert all(j.status == "invalid" for j in result.judgments)


def test_bad_config_is_a_clear_error(affix_file):
    engine = PerRequestScriptedEngine(kind_or_cruel)
    with pytest.raises(ConfigError, match="rlcd config: unknown key 'temprature'"):
        call_source(rlcd, prompts(), engine, {"temprature": 1.0})
    with pytest.raises(ConfigError, match="rlcd config: field 'rescore.threshold'"):
        call_source(rlcd, prompts(), engine, {"rescore": {"threshold": 0.2}})
