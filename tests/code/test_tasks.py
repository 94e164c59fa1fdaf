"""The Task layer: verdicts from the real sandbox and the instruction checker, the one verified metric
(pass@k with the human-eval estimator, the instruction pass rate), the paired sign-test change between
two evaluations and the one verifier reward."""

from __future__ import annotations

import pytest

from rlaif.code.passk import pass_at_k
from rlaif.code.problems import load_problems
from rlaif.engines.base import Sampling
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError, RecordError, RlaifError
from rlaif.records import Message, PromptRecord
from rlaif.tasks.base import completion_text
from rlaif.tasks.code import CodeTask
from rlaif.tasks.instruction import InstructionTask
from rlaif.tasks.metric import instruction_pass_rate_metric, paired_change, pass_at_k_metric, sign_test_p
from rlaif.tasks.rewards import reward_function
from rlaif.train.rewards import verifier_reward

WRONG = "def remove_Occ(s, ch):\n    return s.replace(ch, '') if len(s) > 3 else s\n"


def test_code_task_verdicts_come_from_the_sandbox(code_pool, assets):
    problems = load_problems(assets / "mbpp_mini.jsonl")
    task = CodeTask(problems, pool=code_pool)
    p11 = task.record("11")
    good, partial, syntax = task.verify_many(
        [(p11, p11.reference_solution), (p11, [{"role": "assistant", "content": WRONG}]), (p11, "def x(:")]
    )
    assert (good.passed, good.score, good.status) == (True, 1.0, "passed")
    assert (partial.passed, partial.status) == (False, "failed") and partial.score == pytest.approx(2 / 3)
    assert partial.evidence.tests_total == 3 and syntax.status == "syntax_error" and not syntax.passed
    with pytest.raises(RlaifError, match="unknown task_id 'nope'"):
        task.record("nope")


def _instruction_prompts() -> list[PromptRecord]:
    lower = [{"kind": "lowercase"}]
    two = [{"kind": "lowercase"}, {"kind": "keyword", "value": "moon"}]
    return [
        PromptRecord(
            id="a", messages=[Message(role="user", content="say hi")], metadata={"instructions": lower}
        ),
        PromptRecord(
            id="b", messages=[Message(role="user", content="say moon")], metadata={"instructions": two}
        ),
        PromptRecord(id="c", messages=[Message(role="user", content="anything")]),
    ]


def test_instruction_task_scores_the_fraction_followed_and_names_a_bad_instruction():
    a, b, c = _instruction_prompts()
    task = InstructionTask([a, b, c])
    assert task.verify(b, "the moon").passed and task.verify(b, "the moon").score == 1.0
    half = task.verify(b, "The sun")
    assert (half.passed, half.score, half.status) == (False, 0.0, "failed")
    assert task.verify(b, "the sun").score == 0.5 and "keyword" in task.verify(b, "the sun").detail
    assert task.verify(c, "x").status == "unscored" and not task.verify(c, "x").passed
    broken = PromptRecord(id="z", messages=a.messages, metadata={"instructions": [{"kind": "nope"}]})
    with pytest.raises(RecordError, match="prompt z: unknown instruction kind 'nope'"):
        task.verify(broken, "x")


def test_the_verified_metric_gives_the_unbiased_pass_at_k_on_sandboxed_samples(code_pool, assets):
    problems = load_problems(assets / "mbpp_mini.jsonl")[:2]
    # problem 0: 1 of 4 samples right; problem 1: 3 of 4
    right = {0: {0}, 1: {0, 1, 2}}

    def responder(conversation, index, sampling):
        i = next(i for i, p in enumerate(problems) if p.prompt in conversation[-1].content)
        return problems[i].reference_solution if index in right[i] else "def nothing():\n    return None\n"

    engine = ScriptedEngine(responder)
    metric = pass_at_k_metric(CodeTask(problems, pool=code_pool), [1, 2, 4, 5])
    checked, summary = metric.measure(engine, problems, Sampling(n=4, seed=1))
    assert len(checked) == 8 and [c.completion.index for c in checked[:4]] == [0, 1, 2, 3]
    assert summary["pass@1"] == pytest.approx((1 / 4 + 3 / 4) / 2)
    assert summary["pass@2"] == pytest.approx((pass_at_k(4, 1, 2) + pass_at_k(4, 3, 2)) / 2)
    assert summary["pass@4"] == 1.0 and "pass@5" in summary["skipped_k"]
    assert summary["status_counts"]["passed"] == 4 and sum(summary["status_counts"].values()) == 8
    assert len(engine.calls) == 1  # every record in one generate call


def test_the_instruction_pass_rate_is_the_same_metric_with_the_instruction_task():
    prompts = _instruction_prompts()
    engine = ScriptedEngine(lambda conv, index, sampling: "the moon" if index == 0 else "The Moon")
    metric = instruction_pass_rate_metric(InstructionTask(prompts))
    checked, summary = metric.measure(engine, prompts, Sampling(n=2))
    assert [c.verdict.passed for c in checked] == [True, False, True, False, False, False]
    assert summary["instruction_pass_rate"] == 0.5 and summary["instruction_unscored"] == 2
    assert summary["instruction_samples"] == 4


def test_the_instruction_checker_is_a_trl_style_reward():
    reward = verifier_reward(InstructionTask(), "fraction")
    specs = [[{"kind": "lowercase"}, {"kind": "keyword", "value": "moon"}]] * 3
    completions = [[{"role": "assistant", "content": t}] for t in ("the moon", "the sun", "The Sun")]
    assert reward(prompts=["p"] * 3, completions=completions, instructions=specs) == [1.0, 0.5, 0.0]
    assert reward.__name__ == "instructions_fraction"
    binary = reward_function(InstructionTask(), "binary")
    assert binary(completions=["the moon", "x"], instructions=specs[:2]) == [1.0, 0.0]
    with pytest.raises(RlaifError, match="needs an 'instructions' column"):
        binary(completions=["x"])
    with pytest.raises(ConfigError, match="unknown verifier reward 'bleu'"):
        reward_function(InstructionTask(), "bleu")


def test_require_answer_fails_replies_that_follow_the_instruction_but_answer_nothing():
    """The checker alone passes "<<Moon>> Sure." for a title instruction; ``require_answer`` fails it
    (status ``not_answered``, score 0) and still passes a real answer. The request comes from the
    prompt's ``task`` column, else from the prompt itself without its instruction sentence."""
    specs = [[{"kind": "title", "value": None}]] * 3
    completions = [
        "<<Moon>> Sure.",
        "<<Moon>> The moon circles the earth every month and lights the night.",
        "<<Moon>> Cats sleep most of the day and purr when they are happy.",
    ]
    prompt = [{"role": "user", "content": "Describe the moon. Give your answer a title in double "
               "angle brackets, like <<my title>>."}]  # fmt: skip
    plain = verifier_reward(InstructionTask(), "fraction")
    assert plain(prompts=[prompt] * 3, completions=completions, instructions=specs) == [1.0, 1.0, 1.0]
    guarded = verifier_reward(InstructionTask(require_answer=True), "fraction")
    assert guarded(prompts=[prompt] * 3, completions=completions, instructions=specs) == [0.0, 1.0, 0.0]
    assert [v.status for v in guarded.last_verdicts] == ["not_answered", "passed", "not_answered"]
    assert "'Describe the moon.'" in guarded.last_verdicts[0].detail
    # the prompt file's task field wins over the prompt text
    tasks = ["Describe a cat."] * 3
    assert guarded(prompts=[prompt] * 3, completions=completions, instructions=specs, task=tasks) == [
        0.0, 0.0, 1.0,
    ]  # fmt: skip
    # a broken instruction is still an error naming the prompt, not a non-answer
    with pytest.raises(RlaifError, match="rollout 0"):
        guarded(prompts=[prompt], completions=["x"], instructions=[[{"kind": "no_such_kind"}]])
    with pytest.raises(RlaifError, match="require_answer needs the request"):
        guarded(completions=["<<A>> a b c d e f"], instructions=specs[:1])


def test_completion_text_reads_strings_conversations_and_engine_completions():
    from rlaif.records import Completion

    assert completion_text("a") == "a"
    assert completion_text([{"role": "assistant", "content": "b"}]) == "b"
    assert completion_text(Completion(index=0, text="c")) == "c"
    with pytest.raises(RlaifError, match="cannot read a completion of type int"):
        completion_text(3)


def test_the_demo_registers_its_problem_set_and_corpus_by_name():
    from rlaif.tasks import catalog

    train = catalog.problem_set("demo_code")("train")
    held = catalog.problem_set("demo_code")("heldout")
    assert train and held and not {p.task_id for p in train} & {p.task_id for p in held}
    text = catalog.corpus("demo:code")(lambda conv: f"<u>{conv[0]['content']}</u><a>{conv[1]['content']}</a>")
    assert text.count("<u>") == len(train) and train[0].reference_solution in text
    assert catalog.corpus("data/corpus.txt") is None  # not a registered name: a file path
    with pytest.raises(ConfigError, match="unknown problem set 'nope' \\(known: demo_code"):
        catalog.problem_set("nope")
    with pytest.raises(ConfigError, match="registered twice"):
        catalog.register_problem_set("demo_code", lambda split: [])


def test_a_validated_code_task_gives_broken_problems_their_own_verdict_left_out_of_pass_at_k(
    code_pool, assets
):
    from rlaif.tasks.metric import Checked, pass_at_k

    good = load_problems(assets / "mbpp_mini.jsonl")[0]
    broken = good.model_copy(update={"task_id": "broken", "tests": ["assert remove_Occ('ab', 'a') == 'xyz'"]})
    task = CodeTask([good, broken], pool=code_pool)
    assert set(task.validate()) == {"broken"} and "reference solution does not pass" in task.bad["broken"]
    verdicts = task.verify_many([(good, good.reference_solution), (broken, broken.reference_solution)])
    assert [v.status for v in verdicts] == ["passed", "bad_problem"] and not verdicts[1].counts
    checked = [Checked(p, p.task_id, None, v) for p, v in zip([good, broken], verdicts, strict=True)]
    summary = pass_at_k(checked, [1])
    assert (summary["pass@1"], summary["problems"], summary["bad_problems"]) == (1.0, 1, 1)
    assert reward_function(task, "coderl").score(verdicts[1]) is None  # not the policy's fault


def test_sign_test_matches_hand_computed_binomial_tails():
    # n = 12 changes, 3 the minority: 2 * (C(12,0)+C(12,1)+C(12,2)+C(12,3)) / 2^12 = 2 * 299 / 4096
    assert sign_test_p(9, 3) == pytest.approx(2 * 299 / 4096)
    assert sign_test_p(3, 9) == sign_test_p(9, 3)
    assert sign_test_p(5, 0) == pytest.approx(2 / 32)
    assert sign_test_p(3, 3) == 1.0 and sign_test_p(0, 0) == 1.0
    # a large one-sided change keeps its magnitude in the summary (not rounded to 0)
    tiny = paired_change({str(i): False for i in range(75)}, {str(i): i < 68 for i in range(75)})
    assert tiny["gained"] == 68 and 0 < tiny["sign_test_p"] < 1e-15


def test_paired_change_pairs_by_key_and_counts_the_unmatched():
    before = {"a#0": False, "b#0": False, "c#0": True, "d#0": True, "gone#0": True}
    after = {"a#0": True, "b#0": False, "c#0": False, "d#0": True, "new#0": True, "e#0": True}
    before["e#0"] = False
    change = paired_change(before, after)
    assert change == {
        "paired": 5,
        "gained": 2,  # a, e
        "lost": 1,  # c
        "sign_test_p": 1.0,
        "unmatched": 2,  # gone (only before), new (only after)
    }
