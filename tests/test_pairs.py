"""Pair selection and filtering (rlaif.pairs) against hand-computed expectations."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from rlaif.pairs import (
    PairFilterConfig,
    PairStats,
    filter_pairs,
    length_ratio,
    length_summary,
    per_source_stats,
    select_pair,
)
from rlaif.records import Message, PreferencePair


def make_pair(
    chosen: str, rejected: str, *, margin=None, source="s", prompt="q", soft=None
) -> PreferencePair:
    return PreferencePair(
        id=f"{source}-{prompt}-{chosen}-{rejected}",
        prompt=[Message(role="user", content=prompt)],
        chosen=chosen,
        rejected=rejected,
        margin=margin,
        soft_label=soft,
        source=source,
    )


def test_max_min_picks_highest_against_lowest_and_skips_unscored():
    sel = select_pair(["a", "bb", "ccc", "dddd"], [3.0, 5.0, None, 1.0])
    assert (sel.chosen, sel.rejected, sel.margin, sel.reason) == (1, 3, 4.0, "")


def test_equal_scores_break_by_lowest_index():
    sel = select_pair(["w", "x", "y", "z"], [5.0, 5.0, 1.0, 1.0])
    assert (sel.chosen, sel.rejected) == (0, 2)


@pytest.mark.parametrize(
    ("scores", "min_margin", "reason"),
    [
        ([2.0, 2.0, 2.0], 0.0, "tie"),  # all equal: never a pair
        ([None, 3.0, None], 0.0, "too_few_scored"),  # one scored candidate
        ([None, None], 0.0, "too_few_scored"),
        ([3.0, 4.0, 2.0], 2.5, "below_min_margin"),  # 4 - 2 = 2 < 2.5
    ],
)
def test_drop_reasons(scores, min_margin, reason):
    sel = select_pair(["t"] * len(scores), scores, min_margin=min_margin)
    assert not sel.ok and sel.reason == reason


def test_margin_equal_to_minimum_is_kept():
    sel = select_pair(["a", "b"], [4.0, 2.0], min_margin=2.0)
    assert sel.ok and sel.margin == 2.0


def test_length_ratio_filter_in_max_min():
    texts = ["x" * 30, "y" * 10]
    assert select_pair(texts, [5.0, 1.0], max_length_ratio=2.0).reason == "length_ratio"  # 30/10 = 3 > 2
    assert select_pair(texts, [5.0, 1.0], max_length_ratio=3.0).ok  # 3 <= 3


def test_length_matched_pairing_prefers_closest_lengths():
    # lengths 100, 20, 10, 22; scores 5, 4, 1, 2. Positive-margin pairs and |log(len_i/len_j)|:
    # (1,3): 20 vs 22 -> 0.095 (margin 2) is the closest; max_min would have taken (0,2) = 100 vs 10.
    texts = ["a" * 100, "b" * 20, "c" * 10, "d" * 22]
    scores = [5.0, 4.0, 1.0, 2.0]
    assert (select_pair(texts, scores).chosen, select_pair(texts, scores).rejected) == (0, 2)
    sel = select_pair(texts, scores, pairing="length_matched")
    assert (sel.chosen, sel.rejected, sel.margin) == (1, 3, 2.0)
    # with a minimum margin of 3 only (0,2), (0,3), (1,2) qualify: |log| = 2.30, 1.51, 0.69 -> (1,2)
    sel = select_pair(texts, scores, pairing="length_matched", min_margin=3.0)
    assert (sel.chosen, sel.rejected, sel.margin) == (1, 2, 3.0)


def test_length_matched_with_no_admissible_pair():
    sel = select_pair(["a" * 50, "b"], [5.0, 1.0], pairing="length_matched", max_length_ratio=2.0)
    assert sel.reason == "length_ratio"


def test_a_minimum_length_ratio_drops_a_stub_in_max_min_and_skips_to_the_next_pair_when_length_matched():
    # lengths 4, 40, 30, 44; scores 5, 4, 1, 2. max_min takes (0, 2): 4/30 = 0.13 < 0.5 drops the prompt.
    texts = ["Sure", "b" * 40, "c" * 30, "d" * 44]
    scores = [5.0, 4.0, 1.0, 2.0]
    assert select_pair(texts, scores, min_length_ratio=0.5).reason == "length_ratio"
    assert select_pair(texts, scores, min_length_ratio=0.1).ok  # 0.13 >= 0.1
    # length_matched without a bound: (1, 3) 40 vs 44 is the closest of the positive-margin pairs; so it is
    # with the bound too, and the stub pairs (0, j) (4/30, 4/44, 4/40) are all out of it
    sel = select_pair(texts, scores, pairing="length_matched", min_length_ratio=0.5)
    assert (sel.chosen, sel.rejected) == (1, 3)
    # a margin of 3 admits (0, 2) 4/30, (0, 3) 4/44 and (1, 2) 40/30: the stubs are skipped for (1, 2)
    sel = select_pair(texts, scores, pairing="length_matched", min_margin=3.0, min_length_ratio=0.5)
    assert (sel.chosen, sel.rejected, sel.margin) == (1, 2, 3.0)
    sel = select_pair(texts, scores, pairing="length_matched", min_margin=4.0, min_length_ratio=0.5)
    assert sel.reason == "length_ratio"  # only (0, 2) has a margin of 4


def test_filter_pairs_reasons_in_order():
    pairs = [
        make_pair("same", "same"),
        make_pair("good", "bad", margin=0.5),
        make_pair("long answer here", "short", margin=3.0),  # 16/5 = 3.2
        make_pair("good", "bad", margin=2.0, prompt="q2"),
        make_pair("good", "bad", margin=2.0, prompt="q2"),  # exact duplicate of the previous one
        make_pair("fine", "okay", margin=None),  # no margin: the margin filter does not apply
    ]
    kept, dropped = filter_pairs(pairs, PairFilterConfig(min_margin=1.0, max_length_ratio=3.0))
    assert [p.chosen for p in kept] == ["good", "fine"]
    assert [r for _, r in dropped] == ["identical", "below_min_margin", "length_ratio", "duplicate"]


def test_a_chosen_stub_much_shorter_than_the_rejected_answer_is_dropped_only_when_asked():
    answer = "A river is a stream of water that flows to the sea."  # 52 characters
    pairs = [
        make_pair("Sure.", answer),  # 5/52 = 0.096
        make_pair("A river flows to the sea.", answer, prompt="q2"),  # 25/52 = 0.48
        make_pair("x" * 13, answer, prompt="q3"),  # 13/52 = 0.25: kept at the bound
    ]
    kept, dropped = filter_pairs(pairs, PairFilterConfig(min_length_ratio=0.25))
    assert [p.chosen for p in kept] == ["A river flows to the sea.", "x" * 13]
    assert [(p.chosen, r) for p, r in dropped] == [("Sure.", "chosen_too_short")]
    assert len(filter_pairs(pairs, PairFilterConfig())[0]) == 3
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValidationError, match="min_length_ratio"):
            PairFilterConfig(min_length_ratio=bad)


def test_position_inconsistent_labels_are_dropped_only_when_asked():
    def labelled(chosen: str, consistent) -> PreferencePair:
        pair = make_pair(chosen, "other", margin=0.4)
        pair.metadata["consistent"] = consistent
        return pair

    pairs = [
        labelled("flips", False),
        labelled("agrees", True),
        labelled("one order", None),
        make_pair("x", "y"),
    ]
    kept, dropped = filter_pairs(pairs, PairFilterConfig())
    assert len(kept) == 4 and not dropped  # off by default
    kept, dropped = filter_pairs(pairs, PairFilterConfig(require_consistent_order=True, min_margin=0.5))
    # checked before the margin: a flipping label is counted as such, not as a small margin
    assert [(p.chosen, r) for p, r in dropped] == [
        ("flips", "position_inconsistent"),
        ("agrees", "below_min_margin"),
        ("one order", "below_min_margin"),
    ]
    assert [p.chosen for p in kept] == ["x"]  # no margin, no verdict: untouched


def test_filter_pairs_defaults_keep_distinct_pairs():
    pairs = [make_pair("a", "b"), make_pair("c", "d")]
    kept, dropped = filter_pairs(pairs, PairFilterConfig())
    assert len(kept) == 2 and dropped == []


def test_length_summary_hand_computed():
    pairs = [make_pair("x" * 20, "y" * 10), make_pair("x" * 10, "y" * 10, prompt="b")]
    summary = length_summary(pairs)
    assert summary["n"] == 2
    assert summary["mean_chosen_chars"] == 15.0
    assert summary["mean_rejected_chars"] == 10.0
    assert summary["mean_ratio"] == pytest.approx((2.0 + 1.0) / 2)
    assert summary["ratio_of_means"] == pytest.approx(1.5)
    assert summary["frac_chosen_longer"] == 0.5
    assert length_summary([])["mean_ratio"] is None
    assert length_ratio("abc", "") == 3.0


def test_per_source_stats():
    pairs = [
        make_pair("aa", "b", source="rlcd", margin=None),
        make_pair("aaaa", "bb", source="self_rewarding", margin=2.0, prompt="1"),
        make_pair("a", "bb", source="self_rewarding", margin=1.0, prompt="2", soft=0.6),
    ]
    stats = per_source_stats(pairs)
    assert stats["rlcd"]["pairs"] == 1 and stats["rlcd"]["mean_margin"] is None
    assert stats["self_rewarding"]["pairs"] == 2
    assert stats["self_rewarding"]["mean_margin"] == 1.5
    assert stats["self_rewarding"]["mean_soft_label"] == 0.6
    assert math.isclose(stats["self_rewarding"]["length_mean_ratio"], (2.0 + 0.5) / 2)


def test_pair_stats_balance():
    stats = PairStats(source="x", prompts_in=5, pairs_out=3)
    stats.add_drop("tie")
    assert not stats.balanced
    stats.add_drop("too_few_scored")
    assert stats.balanced and stats.dropped == 2


def test_pair_stats_merge_adds_counts_and_leaves_length_to_the_caller():
    from rlaif.pairs import PairStats

    a = PairStats(source="s", prompts_in=3, pairs_out=2, drops={"tie": 1}, counters={"retries": 2},
                  length={"n": 2})  # fmt: skip
    b = PairStats(source="s", prompts_in=2, pairs_out=0, drops={"tie": 1, "too_long": 1})
    merged = a.merge(b)
    assert (merged.prompts_in, merged.pairs_out) == (5, 2)
    assert merged.drops == {"tie": 2, "too_long": 1} and merged.counters == {"retries": 2}
    assert merged.balanced and merged.length == {} and merged.source == "s"


def test_merge_counts_sums_any_count_model_field_by_field():
    from rlaif.feedback.rlcf import CodePairStats
    from rlaif.pairs import merge_counts

    parts = [
        CodePairStats(
            problems=2,
            pairs=3,
            status_counts={"passed": 2},
            no_pair={"all_passed": 1},
            seconds={"generate": 1.5},
        ),
        CodePairStats(
            problems=1,
            pairs=0,
            status_counts={"passed": 1, "failed": 4},
            seconds={"generate": 2.0, "verify": 0.25},
        ),
    ]
    merged = merge_counts(parts)
    assert (merged.problems, merged.pairs, merged.source) == (3, 3, "rlcf")
    assert merged.status_counts == {"passed": 3, "failed": 4} and merged.no_pair == {"all_passed": 1}
    assert merged.seconds == {"generate": 3.5, "verify": 0.25}  # time per step adds up over chunks
