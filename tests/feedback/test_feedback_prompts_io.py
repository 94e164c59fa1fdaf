"""Loading prompts from JSONL, HH transcripts and MT-Bench questions; errors name file, line, field."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from rlaif.errors import RecordError
from rlaif.feedback.prompts_io import hh_prompt, load_prompts, parse_hh_transcript, read_prompt_file


def write_lines(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


def test_hh_transcript_keeps_conversation_up_to_final_assistant_turn():
    text = "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: how do I bake bread?\n\nAssistant: Mix flour."
    msgs = hh_prompt(text)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "hi there"),
        ("assistant", "hello"),
        ("user", "how do I bake bread?"),
    ]


def test_hh_transcript_that_does_not_alternate_is_rejected():
    with pytest.raises(ValueError, match="turn 3 is 'Assistant:'"):
        parse_hh_transcript("\n\nHuman: a\n\nAssistant: b\n\nAssistant: c")


def test_real_hh_file(shared_data):
    path = shared_data / "hh-rlhf" / "harmless-base_test.jsonl.gz"
    prompts = load_prompts(path, limit=5)
    assert len(prompts) == 5
    assert len({p.id for p in prompts}) == 5
    for p in prompts:
        assert p.messages[-1].role == "user" and p.messages[-1].content
        assert p.metadata["format"] == "hh_transcript"
    # the first record's chosen transcript: its prompt is every turn but the final assistant one
    first = json.loads(gzip.open(path, "rt").readline())["chosen"]
    assert len(prompts[0].messages) == len(parse_hh_transcript(first)) - 1


def test_real_mt_bench_uses_first_turn(shared_data):
    path = shared_data / "mt-bench" / "question.jsonl"
    prompts = load_prompts(path, limit=3)
    first = json.loads(path.read_text().splitlines()[0])
    assert prompts[0].id == f"mt_bench-{first['question_id']}"
    assert [m.content for m in prompts[0].messages] == [first["turns"][0]]
    assert prompts[0].metadata["category"] == first["category"]


def test_jsonl_prompt_and_messages(tmp_path):
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "prompt": "Tell me a joke.", "topic": "fun"},
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
        ],
    )
    prompts = load_prompts(path)
    assert prompts[0].id == "a" and prompts[0].metadata == {"topic": "fun"}
    assert prompts[1].id == "p-2"  # file stem + line number
    assert [m.role for m in prompts[1].messages] == ["system", "user"]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "x"}, "p.jsonl:2: needs a 'prompt' or a 'messages' field"),
        ({"prompt": ""}, "p.jsonl:2: field 'prompt': must be a non-empty string"),
        ({"prompt": "a", "messages": []}, "p.jsonl:2: has both 'prompt' and 'messages'"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "last message",
        ),
        (
            {"messages": [{"role": "robot", "content": "a"}]},
            "p.jsonl:2: field 'messages[0].role': Input should be",
        ),
        ({"id": "ok", "prompt": "dup"}, "duplicate id 'ok'"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, record, message):
    path = write_lines(tmp_path / "p.jsonl", [{"id": "ok", "prompt": "fine"}, record])
    with pytest.raises(RecordError, match=re.escape(message)):
        load_prompts(path)


def test_unknown_format_is_named_on_the_first_record(tmp_path):
    path = write_lines(tmp_path / "q.jsonl", [{"text": "what?"}])
    with pytest.raises(RecordError, match="q.jsonl:1: cannot tell the format"):
        load_prompts(path)


def test_empty_prompt_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(RecordError, match=r"empty.jsonl: no prompts to use \(the file has no records\)"):
        load_prompts(empty)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(RecordError, match="no prompts to use"):
        load_prompts(blank)


def test_missing_file(tmp_path):
    with pytest.raises(RecordError, match="file not found"):
        load_prompts(tmp_path / "nope.jsonl")


def test_malformed_hh_is_an_error_or_skipped_and_reported(tmp_path):
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"chosen": "\n\nHuman: q1\n\nAssistant: a1", "rejected": "x"}) + "\n")
        fh.write(
            json.dumps({"chosen": "\n\nHuman: q2\n\nAssistant: a\n\nAssistant: b", "rejected": "x"}) + "\n"
        )
    with pytest.raises(RecordError, match=r"hh.jsonl.gz:2: field 'chosen': turn 3 is 'Assistant:'"):
        load_prompts(path)
    loaded = read_prompt_file(path, skip_malformed=True)
    assert [p.messages[-1].content for p in loaded.records] == ["q1"]
    assert loaded.skipped == [
        (2, "field 'chosen': turn 3 is 'Assistant:' where 'Human:' was expected (turns must alternate)")
    ]
    assert loaded.format == "hh"


def test_limit_must_be_positive(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{"prompt": "a"}])
    with pytest.raises(RecordError, match="limit must be at least 1"):
        load_prompts(path, limit=0)
