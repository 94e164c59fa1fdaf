"""One judge spec: the kind decided in one place, typed options, front-matter defaults, slots, and a
score judge used as a TRL-style reward function."""

from __future__ import annotations

import pytest

from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError, TemplateError
from rlaif.judges import from_template, load_judge
from rlaif.judges.likelihood import ContrastiveLikelihoodJudge
from rlaif.judges.pairwise import PairwiseJudge
from rlaif.judges.spec import KINDS, build_judge, judge_spec
from rlaif.judges.yesno import LabelProbabilityJudge
from rlaif.records import Message

PROMPT = [Message(role="user", content="How do I boil an egg?")]


@pytest.mark.parametrize(
    ("written", "kind", "slot"),
    [
        ("self_rewarding_rubric", "rubric", "score"),
        ("rubric_fewshot", "rubric", "score"),
        ("harm_yesno", "label_probability", "score"),
        ("contrast_harmless", "likelihood", "score"),
        ("pairwise", "pairwise", "compare"),
        ("cai_principle_choice", "principle", "compare"),
        ("cai", "principle", "compare"),  # an alias of a shipped template
        ({"kind": "length"}, "length", "score"),
    ],
)
def test_the_kind_and_slot_come_from_the_template_or_the_mapping(written, kind, slot):
    spec = judge_spec(written)
    assert (spec.kind, spec.slot) == (kind, slot)
    assert spec == judge_spec(spec.model_dump())  # a spec round-trips through its plain form (context.judge)
    assert kind in KINDS


def test_front_matter_defaults_and_user_options_are_one_typed_model():
    spec = judge_spec({"template": "rubric_fewshot", "samples": 1})
    assert (spec.samples, spec.expected_score, spec.guided_regex) == (1, True, "Score: [0-5]")  # front matter
    assert judge_spec({"template": "rubric_fewshot", "expected_score": False}).expected_score is False
    with pytest.raises(ConfigError, match=r"a rubric judge does not take option\(s\) both_orders; it takes "):
        judge_spec({"template": "rubric_fewshot", "both_orders": True})
    with pytest.raises(ConfigError, match="field 'rubric.samples'"):
        judge_spec({"template": "rubric_fewshot", "samples": 0})
    with pytest.raises(
        ConfigError, match="template 'harm_yesno' drives a label_probability judge, not rubric"
    ):
        judge_spec({"template": "harm_yesno", "kind": "rubric"})
    with pytest.raises(ConfigError, match="'template' is required"):
        judge_spec({"kind": "pairwise"})


def test_a_bad_front_matter_default_is_a_template_error(tmp_path):
    bad = tmp_path / "bad.j2"
    bad.write_text(
        "---\nname: bad\nvariables: [prompt, response]\nparser: score\n"
        "metadata: {judge_options: {samples: -1}}\n---\n{{ prompt }} {{ response }}\n"
    )
    with pytest.raises(
        TemplateError, match=r"template 'bad' .*metadata.judge_options: field 'rubric.samples'"
    ):
        judge_spec(str(bad))


def test_python_builds_a_judge_through_the_spec_which_alone_reads_the_front_matter(tmp_path):
    engine = ScriptedEngine(lambda *_: "A", guided_json=True)
    built = from_template(PairwiseJudge, engine, "pairwise_fewshot", self_check="off")
    assert (built.guided, built.calibrate, built.self_check_mode) == (True, True, "off")
    bare = PairwiseJudge(engine, template="pairwise_fewshot")  # the constructor reads no front matter
    assert (bare.guided, bare.calibrate, bare.self_check_mode) == (False, False, "off")
    assert from_template(ContrastiveLikelihoodJudge, None).positive_system.startswith("You are")
    with pytest.raises(TemplateError, match="set judge_options positive and negative"):
        ContrastiveLikelihoodJudge(None)
    assert from_template(LabelProbabilityJudge, engine, "harm_yesno").good_label == "No"
    bad = tmp_path / "bad_pairwise.j2"
    bad.write_text(
        "---\nname: bad_pairwise\nvariables: [prompt, response_a, response_b]\n"
        "parser: {type: choice, labels: [A, B]}\nmetadata: {judge_options: {self_check: sometimes}}\n"
        "---\n{{ prompt }} {{ response_a }} {{ response_b }}\n"
    )
    with pytest.raises(TemplateError) as err:
        from_template(PairwiseJudge, engine, bad)
    assert str(bad) in str(err.value) and "judge_options: field 'pairwise.self_check'" in str(err.value)


def test_the_run_decides_seed_and_adapter_where_the_kind_takes_them():
    engine = ScriptedEngine(lambda *_: "Score: 4")
    rubric = build_judge("self_rewarding_rubric", engine, seed=7, adapter="/a", principles="ignored")
    assert rubric.sampling.seed == 7 and rubric.adapter == "/a" and rubric.sampling.temperature == 0.7
    principle = build_judge("cai_principle_choice", engine, principles="cai_principles", seed=3)
    assert principle.slot == "compare" and type(principle).__name__ == "PrincipleJudge"


def test_a_score_judge_is_a_trl_reward_function():
    judge = load_judge("self_rewarding_rubric", ScriptedEngine(lambda *_: "Great.\nScore: 4"), samples=1)
    prompts = [[{"role": "user", "content": "q"}], "plain prompt"]
    completions = [[{"role": "assistant", "content": "an answer"}], "another"]
    assert judge(prompts, completions) == [4.0, 4.0]
    unreadable = load_judge(
        "self_rewarding_rubric", ScriptedEngine(lambda *_: "no score"), samples=1, max_retries=0
    )
    assert unreadable(["p"], ["c"]) == [None]  # could not judge: None, never invented


def test_length_judge_is_a_new_kind_through_every_entry_point():
    """The kind added to prove the spec's extension point (files: judges/length.py, judges/spec.py, this)."""
    judge = load_judge({"kind": "length", "prefer": "shorter"}, engine=None)
    results = judge.score([(PROMPT, "short"), (PROMPT, "a much longer reply")])
    assert [r.mean_score for r in results] == [-5.0, -19.0] and all(r.n_valid == 1 for r in results)
    assert judge([[{"role": "user", "content": "q"}]], ["abc"]) == [-3.0]
    longer = load_judge({"kind": "length", "prefer": "longer"}, engine=None)
    assert longer.score([(PROMPT, "abc")])[0].mean_score == 3.0
    with pytest.raises(ConfigError, match="field 'length.prefer'"):
        judge_spec({"kind": "length", "prefer": "middle"})


def test_a_spec_says_whether_its_judge_scores_text(tmp_path):
    assert judge_spec("contrast_harmless").scores_text  # likelihood: log p(reply | context)
    assert not judge_spec("rubric_fewshot").scores_text  # 0-5: the score token's top-k is enough
    from pathlib import Path

    one_to_ten = Path(__file__).parent / "assets" / "rubric_1_10.j2"
    assert judge_spec(str(one_to_ten)).scores_text  # 1-10: each label scored as text
    assert not judge_spec({"template": str(one_to_ten), "expected_score": False}).scores_text
    assert not judge_spec("pairwise").scores_text and not judge_spec({"kind": "length"}).scores_text
