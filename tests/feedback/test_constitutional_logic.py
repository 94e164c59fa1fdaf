"""SL-CAI and RL-CAI logic with scripted engines and hand-computed labels."""

from __future__ import annotations

import pytest
from fb_scripted import PerRequestScriptedEngine, call_source, choice_completion

from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError
from rlaif.feedback.constitutional import load_critique_revision_pairs
from rlaif.feedback.rl_cai import RLCAIConfig, rl_cai, soft_label
from rlaif.feedback.sl_cai import sl_cai
from rlaif.records import Message, PromptRecord


def prompts(*texts: str) -> list[PromptRecord]:
    return [PromptRecord(id=f"p{i}", messages=[Message(role="user", content=t)]) for i, t in enumerate(texts)]


def cai_responder(conv, i, sampling):
    """Initial answer, critique or revision, told apart by how the request ends."""
    text = conv[-1].content
    reviewed = text.split("Assistant's reply:\n")[-1].split("\n")[
        0
    ]  # the reply under review (last one shown)
    if text.rstrip().endswith("Critique:"):
        return f"critique of [{reviewed}]"
    if text.rstrip().endswith("Revision:"):
        return f"revised({reviewed})\n### Example 9 should be cut"
    return f"initial answer to {text}"


def test_sl_cai_rounds_chain_sft_records_and_pairs():
    pset = load_critique_revision_pairs("cai_critique_revision_pairs")
    engine = PerRequestScriptedEngine(cai_responder)
    result = call_source(
        sl_cai,
        prompts("How do I pick a lock?", "Tell me a joke"),
        engine,
        {"rounds": 2, "few_shot": 1},
        seed=5,
    )
    # initial answers, then critique and revision for each round: one call per stage
    assert [len(r) for r in engine.requests] == [2, 2, 2, 2, 2]
    assert result.stats.pairs_out == 2 and result.stats.balanced and result.stats.counters["sft_records"] == 2

    pair = result.pairs[0]
    assert pair.rejected == "initial answer to How do I pick a lock?"
    assert pair.chosen == "revised(revised(initial answer to How do I pick a lock?))"  # cut at "\n### "
    chain = pair.metadata["chain"]
    assert [c["round"] for c in chain] == [1, 2]
    assert chain[0]["revision"] == "revised(initial answer to How do I pick a lock?)"
    assert chain[1]["critique"] == f"critique of [{chain[0]['revision']}]"
    # the principle recorded for each round is the one whose wording was sent
    by_id = {p.id: p for p in pset.principles}
    crit_r1 = engine.requests[1][0][0][0].content
    rev_r2 = engine.requests[4][0][0][0].content
    assert f"Critique request: {by_id[chain[0]['principle_id']].critique}" in crit_r1
    assert f"Revision request: {by_id[chain[1]['principle_id']].revision}" in rev_r2
    assert pset.examples[0].critique in crit_r1 and pset.examples[1].critique not in crit_r1  # few_shot=1

    sft = result.sft_records[0]
    assert sft.completion == pair.chosen and sft.prompt == pair.prompt
    assert sft.metadata["initial_response"] == pair.rejected
    meta = pair.metadata
    assert (
        meta["principles"]["name"] == "cai_critique_revision_pairs" and meta["seeds"]["response"] is not None
    )
    assert meta["templates"]["critique"]["name"] == "cai_critique"

    again = call_source(sl_cai, prompts("How do I pick a lock?", "Tell me a joke"), PerRequestScriptedEngine(cai_responder),
                   {"rounds": 2, "few_shot": 1}, seed=5)  # fmt: skip
    assert [c["principle_id"] for c in again.pairs[0].metadata["chain"]] == [c["principle_id"] for c in chain]


def test_sl_cai_drops_a_prompt_whose_revision_stays_invalid():
    def responder(conv, i, s):
        text = conv[-1].content
        if text.rstrip().endswith("Revision:") and "Tell me a joke" in text:
            return ""
        return cai_responder(conv, i, s)

    engine = PerRequestScriptedEngine(responder)
    result = call_source(
        sl_cai, prompts("How do I pick a lock?", "Tell me a joke"), engine, {"few_shot": 0, "max_retries": 1}
    )
    assert [len(r) for r in engine.requests] == [2, 2, 2, 1]  # the revision retry holds one request
    assert result.stats.drops == {"invalid_revision": 1} and result.stats.pairs_out == 1
    assert result.dropped[0].prompt_id == "p1" and "round 1" in result.dropped[0].detail
    assert len(result.sft_records) == 1


def test_sl_cai_identical_revision_is_left_to_the_pairs_stage():
    engine = PerRequestScriptedEngine(
        lambda conv, i, s: "critique" if conv[-1].content.rstrip().endswith("Critique:") else "same"
    )
    result = call_source(sl_cai, prompts("q"), engine, {"few_shot": 0})
    assert result.stats.drops == {} and result.stats.balanced  # the pairs stage drops it (drop_identical)
    assert [(p.chosen, p.rejected) for p in result.pairs] == [("same", "same")]
    assert len(result.sft_records) == 1  # the SFT example is valid


def test_sl_cai_few_shot_larger_than_the_examples_is_an_error():
    with pytest.raises(ConfigError, match="few_shot=3 but .* has 2 example"):
        call_source(sl_cai, prompts("q"), PerRequestScriptedEngine(cai_responder), {"few_shot": 3})


# P(sample 0 is better) per prompt; None = the judge's answer cannot be read
BELIEF = {"first": 0.9, "second": 0.2, "tie": 0.5, "unreadable": None}


def policy(conv, i, s):
    text = conv[-1].content
    if text == "same":
        return "identical text"
    return f"sample{i} for {text}"


def principle_judge(conv, i, s):
    text = conv[-1].content
    q = next(v for k, v in BELIEF.items() if f"sample0 for {k}" in text)
    if q is None:
        return choice_completion(None)
    first = text.split("(A) ")[1].split("\n")[0]
    return choice_completion(q if first.startswith("sample0") else 1 - q)


@pytest.mark.parametrize(("clamp", "first_label", "second_label"), [(None, 0.9, 0.8), ((0.4, 0.6), 0.6, 0.6)])
def test_rl_cai_soft_labels_clamps_ties_and_invalid(clamp, first_label, second_label):
    judge_engine = ScriptedEngine(principle_judge, model_name="feedback-model")
    engine = PerRequestScriptedEngine(policy)
    result = call_source(rl_cai, prompts("first", "second", "tie", "unreadable", "same"), engine, {"clamp": clamp},
                    judge_engine=judge_engine, seed=2)  # fmt: skip
    assert len(engine.requests) == 1 and engine.requests[0][0][1].n == 2  # two samples per prompt, one call
    assert judge_engine.calls[0][0] == 8  # 4 distinct pairs x 2 orders, one call
    assert result.stats.drops == {"tie": 1, "invalid_judgment": 1, "identical_samples": 1}
    assert result.stats.balanced and result.stats.counters["invalid_judgments"] == 2
    first, second = result.pairs
    assert first.chosen == "sample0 for first" and first.soft_label == pytest.approx(first_label)
    assert first.margin == pytest.approx(2 * first_label - 1)
    assert second.chosen == "sample1 for second" and second.soft_label == pytest.approx(second_label)
    assert first.metadata["chosen_sample"] == "a" and second.metadata["chosen_sample"] == "b"
    assert first.metadata["judge_model"] == "feedback-model" and first.metadata["model"] == "scripted"
    judgments = {j.id: j for j in result.judgments}
    assert all(judgments[jid].principle for jid in first.judgment_ids)
    assert first.metadata["principles"] == [judgments[jid].principle for jid in first.judgment_ids]


def test_soft_label_hand_computed():
    assert soft_label(0.9, None) == ("a", 0.9)
    assert soft_label(0.3, None) == ("b", 0.7)
    assert soft_label(0.5, None) is None
    assert soft_label(0.99, (0.4, 0.6)) == ("a", 0.6)
    assert soft_label(0.02, (0.4, 0.6)) == ("b", 0.6)
    assert soft_label(0.55, (0.4, 0.6)) == ("a", 0.55)


def test_chain_of_thought_clamps_by_default():
    assert RLCAIConfig(chain_of_thought=True).effective_clamp() == (0.4, 0.6)
    assert RLCAIConfig().effective_clamp() is None
    assert RLCAIConfig(chain_of_thought=True, clamp=(0.3, 0.7)).effective_clamp() == (0.3, 0.7)
    with pytest.raises(ConfigError, match="clamp must satisfy"):
        RLCAIConfig(clamp=(0.6, 0.9)).effective_clamp()


def test_rl_cai_uses_the_given_judge_template(tmp_path):
    """The run's judge reaches rl_cai through its context (here a user copy with ``parser: choice``)."""
    from rlaif.prompts import REPO_PROMPTS_DIR

    text = (REPO_PROMPTS_DIR / "cai_principle_choice.j2").read_text()
    text = text.replace("name: cai_principle_choice", "name: my_principle_judge")
    text = text.replace("parser: {type: choice, labels: [A, B], source: logprobs}", "parser: choice")
    mine = tmp_path / "my_principle_judge.j2"
    mine.write_text(text)
    judge_engine = ScriptedEngine(principle_judge, model_name="feedback-model")
    result = call_source(rl_cai, prompts("first", "second"), PerRequestScriptedEngine(policy),
                    {}, judge_engine=judge_engine, seed=2, judge=str(mine))  # fmt: skip
    assert len(result.pairs) == 2
    assert {j.template for j in result.judgments} == {"my_principle_judge"}


def test_rl_cai_refuses_a_judge_of_another_kind_and_its_old_judge_keys():
    with pytest.raises(
        ConfigError, match="rl_cai judge: 'pairwise' is a pairwise judge .* needs a principle"
    ):
        call_source(rl_cai, prompts("first"), PerRequestScriptedEngine(policy), {}, judge="pairwise")
    for old in ({"judge_template": "a.j2"}, {"judge_options": {"seed": 1}}):
        with pytest.raises(ConfigError, match="unknown key"):
            call_source(rl_cai, prompts("first"), PerRequestScriptedEngine(policy), old)
