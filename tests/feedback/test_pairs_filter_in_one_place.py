"""A run filters pairs in one place, the pairs stage: a source keeps every pair it built.

Before, every text source ran the shared filters with their defaults (drop identical, dedup) before the
pairs stage, so ``pairs.options: {drop_identical: false, dedup: false}`` had no effect."""

from __future__ import annotations

from fb_scripted import PerRequestScriptedEngine, call_source

from rlaif.feedback.rlcd import rlcd
from rlaif.pairs import PairFilterConfig, filter_pairs
from rlaif.records import Message, PromptRecord


def test_identical_and_duplicate_pairs_reach_the_pairs_stage(tmp_path):
    affixes = tmp_path / "affixes.yaml"
    affixes.write_text("pairs:\n  - {positive: kind, negative: cruel}\n")
    same = [PromptRecord(id=f"p{i}", messages=[Message(role="user", content="hi")]) for i in range(2)]
    engine = PerRequestScriptedEngine(lambda conv, i, s: "the same answer")  # positive == negative

    result = call_source(rlcd, same, engine, {"affixes": str(affixes)})

    assert len(result.pairs) == 2 and result.stats.pairs_out == 2 and not result.stats.drops
    assert all(p.chosen == p.rejected for p in result.pairs)
    kept, dropped = filter_pairs(result.pairs, PairFilterConfig(drop_identical=False, dedup=False))
    assert len(kept) == 2 and not dropped  # the user's pairs.options decide
    kept, dropped = filter_pairs(result.pairs, PairFilterConfig())
    assert not kept and [reason for _, reason in dropped] == ["identical", "identical"]
