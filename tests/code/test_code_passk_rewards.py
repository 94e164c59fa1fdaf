"""pass@k against hand-computed values; rewards against hand values and as a TRL reward function."""

from __future__ import annotations

import pytest

from rlaif.code.passk import mean_pass_at_k, pass_at_k
from rlaif.code.problems import load_problems
from rlaif.code.rewards import REWARDS, CodeReward, binary, coderl, fraction, reward_fn, rltf
from rlaif.errors import ConfigError, RlaifError
from rlaif.records import ExecutionResult


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),  # c/n
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (10, 0, 3, 0.0),
        (10, 10, 1, 1.0),
        (4, 2, 3, 1.0),  # fewer than k failures: some sample always passes
        (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    ],
)
def test_pass_at_k_matches_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="needs at least 5 samples"):
        pass_at_k(3, 1, 5)


def test_mean_pass_at_k_and_skipped_k():
    scores, skipped = mean_pass_at_k({"a": (5, 2), "b": (5, 0), "c": (3, 3)}, [1, 3, 5])
    assert scores["pass@1"] == pytest.approx((0.4 + 0.0 + 1.0) / 3)
    assert scores["pass@3"] == pytest.approx(((1 - 1 / 10) + 0.0 + 1.0) / 3)  # C(3,3)/C(5,3) = 1/10
    assert "pass@5" not in scores and "fewest: 3" in skipped["pass@5"]


def _result(status: str, passed: int, total: int) -> ExecutionResult:
    return ExecutionResult(id="x", task_id="t", status=status, passed=status == "passed",
                           tests_passed=passed, tests_total=total)  # fmt: skip


@pytest.mark.parametrize(
    ("status", "passed", "total", "values"),
    [  # binary, fraction, coderl, rltf
        ("passed", 3, 3, (1.0, 1.0, 1.0, 1.0)),
        ("failed", 1, 4, (0.0, 0.25, -0.3, -0.3 + 1.3 * 0.25)),
        ("failed", 0, 3, (0.0, 0.0, -0.3, -0.3)),
        ("syntax_error", 0, 3, (0.0, 0.0, -1.0, -1.0)),
        ("runtime_error", 2, 3, (0.0, 2 / 3, -0.6, -0.6)),
        ("timeout", 0, 3, (0.0, 0.0, -0.6, -0.6)),
        ("memory_exceeded", 0, 3, (0.0, 0.0, -0.6, -0.6)),
        ("killed", 0, 3, (0.0, 0.0, -0.6, -0.6)),
        ("sandbox_error", 0, 3, (None, None, None, None)),
    ],
)
def test_rewards_match_hand_values(status, passed, total, values):
    r = _result(status, passed, total)
    got = (binary(r), fraction(r), coderl(r), rltf(r))
    assert got == pytest.approx(values) if values[0] is not None else got == values
    assert [REWARDS[k](r) for k in ("binary", "fraction", "coderl", "rltf")] == list(got)


def test_unknown_reward_name():
    with pytest.raises(ConfigError, match="unknown verifier reward 'bleu'"):
        reward_fn("bleu")


def test_code_reward_is_a_trl_style_reward_function(code_pool, assets):
    problems = load_problems(assets / "mbpp_mini.jsonl")
    p11 = problems[0]  # remove_Occ
    reward = CodeReward(problems, "rltf", pool=code_pool)
    completions = [
        [{"role": "assistant", "content": f"```python\n{p11.reference_solution}\n```"}],
        [
            {
                "role": "assistant",
                "content": "def remove_Occ(s, ch):\n    return s.replace(ch, '') if len(s) > 3 else s\n",
            }
        ],
        [{"role": "assistant", "content": "def remove_Occ(s, ch) return s"}],
        [{"role": "assistant", "content": "def remove_Occ(s, ch):\n    return 1 / 0\n"}],
    ]
    rewards = reward(prompts=["p"] * 4, completions=completions, task_id=["11"] * 4, trainer_state=None)
    partial = reward.last_results[1]
    assert reward.__name__ == "code_rltf"
    assert rewards[0] == 1.0
    assert rewards[1] == pytest.approx(-0.3 + 1.3 * partial.tests_passed / partial.tests_total)
    assert (partial.tests_passed, partial.tests_total) == (2, 3)  # wrong on "PHP" only
    assert rewards[2:] == [-1.0, -0.6]
    with pytest.raises(RlaifError, match="unknown task_id 'nope'"):
        reward(completions=["x"], task_id=["nope"])
    with pytest.raises(RlaifError, match="needs a 'task_id' column"):
        reward(completions=["x"])
