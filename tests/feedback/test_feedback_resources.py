"""Shipped prompt resources for the feedback sources load and validate; broken ones give clear errors."""

from __future__ import annotations

import re

import pytest

from rlaif.errors import ConfigError, RlaifError
from rlaif.feedback.constitutional import load_critique_revision_pairs
from rlaif.feedback.rlcd import load_affix_set
from rlaif.prompts import load_template
from rlaif.records import Message


def test_shipped_affix_sets():
    harmless = load_affix_set("rlcd_harmless")
    assert len(harmless.pairs) == 16
    assert len({p.positive for p in harmless.pairs}) == 16
    assert all(p.positive != p.negative for p in harmless.pairs)
    assert len(load_affix_set("rlcd_helpful").pairs) == 1
    outline = load_affix_set("rlcd_outline")
    assert [p.dimension for p in outline.pairs] == ["interesting", "well_formed", "premise_relevant"]


def test_affix_set_with_a_pair_missing_its_negative(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\npairs:\n  - {positive: kind, negative: cruel}\n  - {positive: calm}\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: pairs[2]: unbalanced pair, missing field 'negative'")
    ):
        load_affix_set(str(path))


def test_affix_set_with_unequal_lists(tmp_path):
    path = tmp_path / "lists.yaml"
    path.write_text("positive: [kind, calm, wise]\nnegative: [cruel, angry]\n")
    with pytest.raises(ConfigError, match="unbalanced affix set: 3 positive vs 2 negative descriptors"):
        load_affix_set(str(path))


def test_affix_set_in_list_form_loads(tmp_path):
    path = tmp_path / "lists.yaml"
    path.write_text("positive: [kind, calm]\nnegative: [cruel, angry]\n")
    aset = load_affix_set(str(path))
    assert [(p.positive, p.negative) for p in aset.pairs] == [("kind", "cruel"), ("calm", "angry")]
    assert aset.name == "lists"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pairs: []\n", "field 'pairs' must be a non-empty list"),
        ("pairs:\n  - {positive: same, negative: same}\n", "positive and negative descriptors are identical"),
        ("pairs:\n  - {positive: a, negative: b, tone: x}\n", "unknown field(s) ['tone']"),
        ("descriptors: []\n", "unknown field(s) ['descriptors']"),
        ("- just a list\n", "expected a mapping at the top level"),
        ("name: x\npairs: [\n", "bad.yaml:3: not valid YAML (expected the node content"),
    ],
)
def test_affix_set_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_affix_set(str(path))


def test_missing_affix_file_names_it():
    with pytest.raises(RlaifError, match="rlcd_nonexistent"):
        load_affix_set("rlcd_nonexistent")


def test_shipped_critique_revision_pairs():
    pset = load_critique_revision_pairs("cai_critique_revision_pairs")
    assert len(pset.principles) == 16
    assert len({p.id for p in pset.principles}) == 16
    assert len(pset.examples) == 2


def test_principles_file_with_a_missing_field(tmp_path):
    path = tmp_path / "principles.yaml"
    path.write_text(
        "principles:\n"
        "  - {id: harm, critique: 'Is it harmful?', revision: Make it harmless.}\n"
        "  - {id: rude, critique: 'Is it rude?'}\n"
    )
    with pytest.raises(ConfigError, match=re.escape(f"{path}: principles[2]: missing field 'revision'")):
        load_critique_revision_pairs(str(path))


def test_example_with_a_missing_field(tmp_path):
    path = tmp_path / "principles.yaml"
    path.write_text(
        "principles:\n  - {id: harm, critique: c, revision: r}\n"
        "examples:\n  - {prompt: p, response: r, critique_request: c, critique: c, revision_request: r}\n"
    )
    with pytest.raises(ConfigError, match=re.escape("examples[1]: missing field 'revision'")):
        load_critique_revision_pairs(str(path))


def test_principles_file_with_duplicate_ids(tmp_path):
    path = tmp_path / "principles.yaml"
    path.write_text(
        "principles:\n  - {id: a, critique: c, revision: r}\n  - {id: a, critique: c2, revision: r2}\n"
    )
    with pytest.raises(ConfigError, match="principles\\[2\\]: duplicate id 'a'"):
        load_critique_revision_pairs(str(path))


def test_templates_render_with_their_declared_variables():
    msgs = [
        Message(role="user", content="hi"),
        Message(role="assistant", content="yo"),
        Message(role="user", content="q?"),
    ]
    text = load_template("rlcd_transcript").render(messages=msgs, descriptor="kind", tag_earlier_turns=False)
    assert text.rstrip("\n").endswith("Human: q?\n\nAssistant (kind):")
    assert "Assistant: yo" in text
    tagged = load_template("rlcd_transcript").render(messages=msgs, descriptor="kind", tag_earlier_turns=True)
    assert "Assistant (kind): yo" in tagged
    assert "kind" in load_template("rlcd_chat_affix").render(descriptor="kind")
    ex = load_critique_revision_pairs("cai_critique_revision_pairs").examples[0].model_dump()
    crit = load_template("cai_critique").render(
        conversation="c", response="r", critique_request="cr", examples=[ex]
    )
    assert crit.rstrip().endswith("Critique:") and ex["critique"] in crit and ex["revision"] not in crit
    rev = load_template("cai_revision").render(
        conversation="c",
        response="r",
        critique_request="cr",
        critique="k",
        revision_request="rr",
        examples=[],
    )
    assert rev.rstrip().endswith("Revision:")
    si = load_template("self_instruct").render(examples=["one", "two"])
    assert si.rstrip().endswith("Request 3:")
    for name in ("cai_critique", "cai_revision", "self_instruct"):
        stops = load_template(name).metadata["stop"]
        assert stops and all(isinstance(s, str) for s in stops)


SOURCE_TEMPLATE_FIELDS = [  # (config class path, field, a shipped template that fits, what a template must show)
    ("rlaif.feedback.sl_cai:SLCAIConfig", "critique_template", "cai_critique", "response, critique_request"),
    (
        "rlaif.feedback.sl_cai:SLCAIConfig",
        "revision_template",
        "cai_revision",
        "response, critique, revision_request",
    ),
    ("rlaif.feedback.sl_cai:SLCAIConfig", "conversation_template", "conversation_transcript", "conversation"),
    ("rlaif.feedback.rlcd:RLCDConfig", "chat_template", "rlcd_chat_affix", "descriptor"),
    ("rlaif.feedback.rlcd:RLCDConfig", "transcript_template", "rlcd_transcript", "messages"),
    ("rlaif.feedback.self_instruct:SelfInstructConfig", "template", "self_instruct", "examples"),
    ("rlaif.feedback.code_repair:CodeRepairConfig", "template", "code_repair", "feedback"),
]


@pytest.mark.parametrize(("config_path", "field", "shipped", "required"), SOURCE_TEMPLATE_FIELDS)
def test_a_sources_template_option_is_checked_when_the_config_is_built(
    tmp_path, config_path, field, shipped, required
):
    """A template a step cannot render fails when the run is validated, naming the field, not when
    the step first renders it after the engine has started."""
    import importlib

    from pydantic import ValidationError

    module, name = config_path.split(":")
    config = getattr(importlib.import_module(module), name)
    assert getattr(config.model_validate({field: shipped}), field) == shipped
    original = load_template(shipped)
    declared = f"variables: [{', '.join(original.variables)}]"
    assert declared in original.text

    def variant(stem: str, text: str) -> str:
        path = tmp_path / f"{stem}.j2"
        path.write_text(text)
        return str(path)

    copy = variant("copy", original.text)
    assert getattr(config.model_validate({field: copy}), field) == copy  # a user's copy, by path
    extra = original.text.replace(declared, declared[:-1] + ", house_style]")
    cases = [
        ("nope_not_a_template", "no template named 'nope_not_a_template'"),
        (variant("extra", extra), "declares house_style, which this step does not supply"),
        (
            variant("undeclared", original.text.rstrip() + "\n{{ house_style }}\n"),
            "the body uses house_style",
        ),
        (
            variant("blind", "---\nname: blind\nvariables: []\n---\nPlain text.\n"),
            f"does not declare {required}",
        ),
    ]
    for value, message in cases:
        with pytest.raises(ValidationError, match=re.escape(message)) as err:
            config.model_validate({field: value})
        assert field in str(err.value)
