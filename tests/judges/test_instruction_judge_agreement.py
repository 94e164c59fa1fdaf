"""benchmarks/instruction_judge_agreement.py with any judge: the agreement arithmetic
(rlaif.judges.checker_pairs / checker_eval) on hand-made scores and verdicts; a score judge (label
probability) and a compare judge (principle) run through it on the tiny vLLM engine; candidates sampled
there, saved and read back (benchmarks/instruction_candidates.py); bad input is one line and exit 2;
the shipped instruction templates and principles load as the judges they name."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark

from rlaif.judges.checker_eval import compare_plan, measure_judge, score_candidates, score_outcomes
from rlaif.judges.checker_pairs import contrast_agreement, follows, judge_summary, picks
from rlaif.judges.pairwise import PairwiseResult
from rlaif.records import Message, PreferencePair, PromptRecord, write_jsonl

NO_COMMAS = {"kind": "no_commas", "value": None}
LOWERCASE = {"kind": "lowercase", "value": None}
MAX3 = {"kind": "max_words", "value": 3}
# (instruction, candidate texts): the checker's verdicts, and so the labelled pairs, are known by hand
CASES = [
    (NO_COMMAS, ["a b", "a, b, c", "x, y, z"]),  # follows: T F F -> 2 labelled pairs
    (LOWERCASE, ["all lower here", "Mixed Case", "also lower too"]),  # T F T -> 2
    (MAX3, ["one two", "one two three four five", "v w x y z"]),  # T F F -> 2
    (NO_COMMAS, ["a", "b"]),  # T T -> none
]
LABELLED = 6


@pytest.fixture(scope="module")
def script():
    return load_benchmark("instruction_judge_agreement")


@pytest.fixture(scope="module")
def candidates():
    return load_benchmark("instruction_candidates")


def make_pairs() -> list[PreferencePair]:
    pairs = []
    for i, (spec, texts) in enumerate(CASES):
        pairs.append(
            PreferencePair(
                id=f"q{i}",
                prompt=[Message(role="user", content=f"Describe the sea. Instruction {spec['kind']}.")],
                chosen=texts[0],
                rejected=texts[-1],
                source="instruction_contrast",
                metadata={
                    "instructions": [spec],
                    "candidates": {"texts": texts, "contrast": [0.0] * len(texts), "chosen": 0},
                },
            )
        )
    return pairs


def assert_counts_add_up(report: dict, labelled: int = LABELLED) -> None:
    judged = report["judged"]
    assert report["labelled_pairs"] == labelled == sum(judged.values())
    assert report["decided_pairs"] == judged["right"] + judged["wrong"]


# -- the arithmetic --------------------------------------------------------------------------------
def test_score_outcomes_count_ties_and_invalid_and_baseline_uses_the_decided_pairs():
    pairs = make_pairs()
    scores = [
        [0.9, 0.1, 0.5],  # right (0 > 1), right (0 > 2)
        [0.2, 0.2, None],  # tied (0 vs 1), invalid (2 vs 1)
        [0.1, 0.8, 0.3],  # wrong, wrong
        [0.5, 0.5],
    ]
    outcome, shorter = score_outcomes(pairs, scores)
    report = judge_summary(outcome, shorter)
    assert_counts_add_up(report)
    assert report["judged"] == {"right": 2, "wrong": 2, "tied": 1, "invalid": 1}
    assert report["judge_agreement"]["agreement"] == 0.5 and report["right_of_labelled"] == round(2 / 6, 4)
    # prefer-shorter on the 4 decided pairs only: the following reply is the shorter in all four
    assert report["baseline_prefer_shorter"]["agreement"] == 1.0
    assert report["judge_vs_shorter"] == {"only_judge_right": 0, "only_shorter_right": 2, "sign_test_p": 0.5}
    picked = picks(pairs, scores)  # q1: both valid scores tie -> the first (follows)
    assert picked["prompts_with_a_pick"] == 4
    assert picked["picked_candidate_follows"] == 0.75  # q0, q1, q3 follow; q2 picks the long reply
    assert picked["random_candidate_follows"] == round((1 / 3 + 2 / 3 + 1 / 3 + 1) / 4, 4)


class FirstShown:
    """A compare judge that always prefers the reply shown first: right exactly when the following
    reply happens to be shown first, never position-consistent."""

    slot = "compare"

    def __init__(self):
        self.items = []

    def compare(self, items, ids=None):
        self.items = list(items)
        return [PairwiseResult(prob_a=0.9, consistent=False, valid=True) for _ in items]


def test_compare_order_is_seeded_and_a_position_biased_judge_is_not_flattered():
    pairs = make_pairs()
    plan = compare_plan(pairs, seed=0)
    assert len(plan) == LABELLED and plan == compare_plan(pairs, seed=0)
    oks = [follows(p) for p in pairs]
    firsts = [oks[r][a] for r, a, _ in plan]  # is the following reply shown first?
    assert any(firsts) and not all(firsts)
    judge = FirstShown()
    report = measure_judge(judge, pairs, seed=0)
    assert_counts_add_up(report)
    assert report["judged"]["right"] == sum(firsts)
    assert report["position_consistency"] == {"consistent": 0, "both_orders_read": LABELLED, "rate": 0.0}
    assert [item[1:] for item in judge.items] == [
        (pairs[r].metadata["candidates"]["texts"][a], pairs[r].metadata["candidates"]["texts"][b])
        for r, a, b in plan
    ]


def test_compare_ties_and_unreadable_verdicts_are_counted():
    class Undecided(FirstShown):
        def compare(self, items, ids=None):
            return [
                PairwiseResult(prob_a=None if i % 2 else 0.5, consistent=None, valid=not i % 2)
                for i, _ in enumerate(items)
            ]

    report = measure_judge(Undecided(), make_pairs(), seed=1)
    assert report["judged"] == {"right": 0, "wrong": 0, "tied": 3, "invalid": 3}
    assert report["judge_agreement"]["agreement"] is None
    assert report["position_consistency"]["both_orders_read"] == 0


# -- the command line (no model: the length baseline, and bad input) -------------------------------
def test_saved_candidates_with_the_length_judge_match_the_shorter_baseline(script, tmp_path, capsys):
    path = tmp_path / "cands.jsonl"
    write_jsonl(path, make_pairs())
    assert script.main(["--candidates-from", str(path), "--judge", '{"kind": "length"}']) == 0
    report = json.loads(capsys.readouterr().out.split("\nnote:")[0])
    assert_counts_add_up(report)
    assert report["judge"]["spec"]["kind"] == "length" and report["judge"]["model"] is None
    assert report["judge_agreement"] == report["baseline_prefer_shorter"]
    assert report["judged"]["tied"] == 0 and report["candidates_scored"] == "11/11"
    # no --judge: the stored contrast (all 0.0 here: every labelled pair is a tie, counted wrong)
    assert script.main(["--candidates-from", str(path)]) == 0
    default = json.loads(capsys.readouterr().out.split("\nnote:")[0])
    assert default["labelled_pairs"] == LABELLED and default["contrast_judge"]["agreement"] == 0.0


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json\n", "cands.jsonl:1: not valid JSON"),
        ('{"id": "x"}\n', "invalid PreferencePair"),
        (None, "record 1 (q0): no metadata.candidates"),
        ("", "no pairs in the file"),
    ],
)
def test_a_bad_candidates_file_is_one_line_and_exit_2(script, tmp_path, capsys, content, message):
    path = tmp_path / "cands.jsonl"
    if content is None:  # a pair saved with --candidates 1
        pair = make_pairs()[0]
        write_jsonl(path, [pair.model_copy(update={"metadata": {"instructions": [NO_COMMAS]}})])
    else:
        path.write_text(content, encoding="utf-8")
    assert script.main(["--candidates-from", str(path), "--judge", '{"kind": "length"}']) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--candidates-from" in err and message in err


@pytest.mark.parametrize(
    "judge, message",
    [
        (["--judge", "{kind: length"], "--judge: not a valid JSON mapping"),
        (["--judge", "no_such_template"], "--judge: "),
        (["--save", "again.jsonl"], "--save: nothing is sampled"),
    ],
)
def test_a_bad_judge_spec_or_option_is_one_line_and_exit_2(script, tmp_path, capsys, judge, message):
    path = tmp_path / "cands.jsonl"
    write_jsonl(path, make_pairs())
    assert script.main(["--candidates-from", str(path), *judge]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_shipped_instruction_judges_load_as_the_kinds_they_name(script):
    from rlaif.judges.principle import load_principles
    from rlaif.prompts import list_templates

    names = {t.name for t in list_templates()}  # what the every-template render test walks over
    assert {"instruction_yesno", "instruction_follow_contrast"} <= names
    yesno = script.parse_judge("instruction_yesno")
    assert (yesno.kind, yesno.slot, yesno.good_label) == ("label_probability", "score", "Yes")
    contrast = script.parse_judge("instruction_follow_contrast")
    assert contrast.kind == "likelihood" and "follows every instruction" in contrast.positive
    principles = load_principles("instruction_principles")
    assert len(principles) == 5 and principles[0].id == "follows_instructions"


# -- the real engine (tiny model) ------------------------------------------------------------------
def prompt_record(i: int, task: str, spec: dict, wording: str) -> PromptRecord:
    return PromptRecord(
        id=f"p{i}",
        messages=[Message(role="user", content=f"{task} {wording}")],
        metadata={"task": task, "instructions": [spec]},
    )


@pytest.mark.vllm
def test_sampled_candidates_are_saved_and_read_back_as_the_same_pairs(candidates, scoring_engine, tmp_path):
    prompts = [
        prompt_record(0, "Describe the moon.", NO_COMMAS, "Do not use any commas."),
        prompt_record(1, "Tell me about dogs.", MAX3, "Answer in at most 3 words."),
    ]
    result = candidates.sample_candidates(scoring_engine, prompts, 3, 1.0, 8, seed=3)
    assert result.pairs, "the tiny model gave no pair at all"
    path = tmp_path / "cands.jsonl"
    write_jsonl(path, result.pairs)
    loaded = candidates.load_candidates(str(path), need_contrast=True)
    assert [p.model_dump() for p in loaded] == [p.model_dump() for p in result.pairs]
    assert all(len(p.metadata["candidates"]["texts"]) == 3 for p in loaded)
    assert contrast_agreement(loaded) == contrast_agreement(result.pairs)


@pytest.mark.vllm
def test_a_label_probability_judge_on_the_tiny_engine(script, scoring_engine):
    from rlaif.judges.spec import build_judge

    pairs = make_pairs()
    judge = build_judge(script.parse_judge("instruction_yesno"), scoring_engine, seed=0)
    report = measure_judge(judge, pairs, seed=0)
    assert_counts_add_up(report)
    assert report["candidates_scored"] == "11/11"  # guided Yes/No: every reply gets a valid score
    # the baseline and the sign test are over exactly the decided pairs
    scores = score_candidates(judge, pairs)
    outcome, shorter = score_outcomes(pairs, scores)
    decided = [k for k, v in outcome.items() if v in ("right", "wrong")]
    assert report["decided_pairs"] == len(decided)
    expected = sum(shorter[k] for k in decided) / len(decided) if decided else None
    assert report["baseline_prefer_shorter"]["agreement"] == (
        None if expected is None else round(expected, 4)
    )


@pytest.mark.vllm
def test_a_principle_judge_on_the_tiny_engine(script, scoring_engine):
    from rlaif.judges.spec import build_judge

    spec = script.parse_judge(
        '{"template": "cai_principle_choice", "principles": "instruction_principles",'
        ' "calibrate": true, "guided": true}'
    )
    judge = build_judge(spec, scoring_engine, seed=0)
    report = measure_judge(judge, make_pairs(), seed=0)
    assert_counts_add_up(report)
    consistency = report["position_consistency"]
    assert 0 <= consistency["consistent"] <= consistency["both_orders_read"] <= LABELLED
    assert "picked_candidate_follows" not in report  # a compare judge picks no candidate
