"""Test-gated pairs: the selection rules on hand-made candidates, then the whole builder with fixed
candidate programs served by a ScriptedEngine and executed for real in the sandbox."""

from __future__ import annotations

import pytest

from rlaif.code.problems import load_problems
from rlaif.engines.base import Sampling
from rlaif.engines.scripted import ScriptedEngine
from rlaif.feedback.rlcf import CodePairConfig, build_code_pairs
from rlaif.feedback.verified import Candidate, select_pairs
from rlaif.records import ExecutionResult, derive_seed
from rlaif.tasks.code import execution_verdict


def cand(index: int, status: str, passed: int, total: int = 3) -> Candidate:
    r = ExecutionResult(id=f"e{index}", task_id="t", status=status, passed=status == "passed",
                        tests_passed=passed, tests_total=total)  # fmt: skip
    return Candidate(index, f"program {index}", execution_verdict(r))


def test_pass_beats_fail_most_wrong_failure_first():
    cands = [cand(0, "failed", 2), cand(1, "passed", 3), cand(2, "runtime_error", 0), cand(3, "passed", 3)]
    pairs, reason = select_pairs(cands, CodePairConfig(pairs_per_problem=3))
    assert reason == ""
    assert [(c.index, r.index, kind) for c, r, kind in pairs] == [
        (1, 2, "pass_vs_fail"),
        (1, 0, "pass_vs_fail"),
        (3, 2, "pass_vs_fail"),
    ]


def test_without_a_pass_only_a_large_enough_margin_makes_a_pair():
    cands = [cand(0, "failed", 1), cand(1, "failed", 3 - 1), cand(2, "syntax_error", 0)]
    pairs, _ = select_pairs(cands, CodePairConfig(partial_margin=0.5))
    assert [(c.index, r.index, kind) for c, r, kind in pairs] == [(1, 2, "fraction_margin")]
    assert select_pairs(cands, CodePairConfig(partial_margin=0.7)) == ([], "no_pass_below_margin")
    assert select_pairs(cands, CodePairConfig(partial_margin=None)) == ([], "no_passing_candidate")


def test_no_pair_reasons():
    assert select_pairs([cand(0, "passed", 3), cand(1, "passed", 3)], CodePairConfig())[1] == "all_passed"
    assert select_pairs([cand(0, "passed", 3)], CodePairConfig())[1] == "single_distinct_candidate"
    errors = [cand(0, "sandbox_error", 0), cand(1, "sandbox_error", 0)]
    assert select_pairs(errors, CodePairConfig())[1] == "no_candidates"
    # a sandbox error never becomes a rejected program
    mixed = [cand(0, "passed", 3), cand(1, "sandbox_error", 0)]
    assert select_pairs(mixed, CodePairConfig())[1] == "single_distinct_candidate"


PROGRAMS = {
    "remove first and last occurrence": [
        "REF",
        "def remove_Occ(s, ch):\n    return s\n",
        "def remove_Occ(s, ch):\n    return s.replace(ch, '') if len(s) > 3 else s\n",
        "def remove_Occ(s, ch):\n    return s\n",  # duplicate of sample 1
    ],
    "sort a given matrix": [
        "def sort_matrix(M):\n    return sorted(M, key=sum)\n",
        "def sort_matrix(M):\n    return sorted(M, key=lambda row: sum(row))\n",
        "def sort_matrix(M):\n    return sorted(M, key=sum)\n",
        "def sort_matrix(M):\n    return sorted(M, key=lambda row: sum(row))   \n",  # same after trimming
    ],
    "most common words": ["def count_common(words):\n    return []\n"] * 4,
    "triangular prism": [
        "def find_Volume(l, b, h):\n    return l * b * h\n",
        "def find_Volume(l, b, h):\n    return 240 if l == 10 else 0\n",
        "def find_Volume(l, b, h):\n    return {10: 240, 3: 6}.get(l, 0)\n",
        "def find_Volume(l, b, h) return 0\n",
    ],
    "split a string at lowercase": [f"def split_lowerstring(t) return {i}\n" for i in range(4)],
}


@pytest.fixture(scope="module")
def problems(request):
    from pathlib import Path

    return load_problems(Path(request.fspath).parent / "assets" / "mbpp_mini.jsonl")[:5]


def test_builder_with_fixed_candidates(code_pool, problems):
    ref = problems[0].reference_solution

    def responder(conversation, index, sampling):
        text = conversation[-1].content
        for key, programs in PROGRAMS.items():
            if key in text:
                program = programs[index]
                return f"```python\n{ref}\n```" if program == "REF" else program
        raise AssertionError(f"unexpected prompt {text!r}")

    engine = ScriptedEngine(responder)
    config = CodePairConfig(k=4, pairs_per_problem=2, partial_margin=0.5)
    run = build_code_pairs(problems, engine, code_pool, config=config, sampling=Sampling(seed=1), round=2)

    (count, samplings, _), *later = engine.calls
    assert count == 5 and not later and all(s.n == 4 for s in samplings)  # one batch
    # one seed per problem, from the base seed, the source and the task id (not the batch)
    assert [s.seed for s in samplings] == [derive_seed(1, "rlcf", p.task_id, 0) for p in problems]
    s = run.stats
    assert (s.problems, s.candidates, s.duplicates_removed, s.executions) == (5, 20, 6, 14)
    assert (s.problems_with_pass, s.problems_with_pair, s.pairs) == (2, 2, 4)
    assert s.no_pair == {"all_passed": 1, "single_distinct_candidate": 1, "no_pass_below_margin": 1}
    assert s.balanced
    assert len(run.executions) == 14 and s.status_counts["syntax_error"] == 5

    by_task: dict[str, list] = {}
    for p in run.pairs:
        by_task.setdefault(p.metadata["task_id"], []).append(p)
    (a, b) = by_task["11"]
    assert (a.metadata["chosen"]["sample_index"], a.metadata["rejected"]["sample_index"]) == (0, 1)
    assert (b.metadata["chosen"]["sample_index"], b.metadata["rejected"]["sample_index"]) == (0, 2)
    assert (a.margin, b.margin) == (pytest.approx(1.0), pytest.approx(1 / 3))
    assert b.metadata["rejected"] == {
        "sample_index": 2,
        "status": "failed",
        "score": pytest.approx(2 / 3),
        "tests_passed": 2,
        "tests_total": 3,
    }
    assert a.chosen.startswith("```python") and a.rejected == PROGRAMS["remove first and last occurrence"][1]
    (c, d) = by_task["14"]
    assert {c.metadata["pairing"], d.metadata["pairing"]} == {"fraction_margin"}
    assert c.metadata["chosen"]["sample_index"] == 2 and c.margin == pytest.approx(2 / 3)
    assert {c.metadata["rejected"]["sample_index"], d.metadata["rejected"]["sample_index"]} == {0, 3}
    ids = {e.id: e for e in run.executions}
    for p in run.pairs:
        chosen, rejected = (ids[i] for i in p.execution_ids)
        assert chosen.tests_passed > rejected.tests_passed
        assert (p.source, p.round, p.prompt[-1].role) == ("rlcf", 2, "user")


def test_builder_without_dedup_runs_every_candidate(code_pool, problems):
    engine = ScriptedEngine(lambda conv, i, s: "def count_common(words):\n    return []\n")
    run = build_code_pairs(problems[2:3], engine, code_pool, config=CodePairConfig(k=3, dedup=False))
    assert (run.stats.executions, run.stats.duplicates_removed) == (3, 0)
    assert run.stats.no_pair == {"no_pass_below_margin": 1}


def test_rlcf_pairs_end_with_a_closed_code_block(code_pool, problems):
    """The source samples with the closing fence kept (vLLM drops a stop string otherwise) and drops
    only the blank line after it, so DPO sees answers that close their block, not ones that end in it."""
    from rlaif.code.jobs import CODE_STOP, close_code_block, extract_code
    from rlaif.feedback.rlcf import RLCFConfig, rlcf

    ref = problems[0].reference_solution
    wrong = "def remove_Occ(s, ch):\n    return s"
    engine = ScriptedEngine(lambda conv, i, s: f"Here:\n```python\n{ref if i == 0 else wrong}\n```\n\n")
    result = rlcf(problems[:1], engine, RLCFConfig(k=2), sandbox=code_pool)
    (_, sampling, _), *_ = engine.calls
    sampling = sampling if isinstance(sampling, Sampling) else sampling[0]  # one prompt: one setting
    assert sampling.stop == list(CODE_STOP) and sampling.include_stop
    (pair,) = result.pairs
    assert pair.chosen == f"Here:\n```python\n{ref}\n```\n"  # closed; the blank line after it dropped
    assert pair.rejected == f"Here:\n```python\n{wrong}\n```\n"
    assert extract_code(pair.rejected) == wrong + "\n"  # the program run is the same as before
    assert close_code_block("x\n```\n\n") == "x\n```\n" and close_code_block("x\n```") == "x\n```"
    assert close_code_block("ends inside\n") == "ends inside\n"  # stopped by length or EOS: unchanged
