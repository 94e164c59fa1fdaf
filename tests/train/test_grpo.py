"""GRPO and RLOO: one real TRL training step on the tiny model with the sandbox code reward.

Each completion becomes a tiny program (``text = <completion>``) that the sandbox pool runs against
the problem's unit test (``len(text)`` is even); :class:`rlaif.code.rewards.CodeReward` maps the
outcome to a reward. Random completions pass about half the time, so each group has reward variance
and the step has a real gradient.
"""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from rlaif.records import CodeProblem
from rlaif.train.common import read_metrics
from rlaif.train.configs import GRPOConfig, PolicySpec, RLOOConfig
from rlaif.train.grpo import run_grpo, run_rloo
from rlaif.train.rewards import completion_text

PARITY = CodeProblem(
    task_id="parity", prompt="Answer with an even number of characters.", tests=["assert len(text) % 2 == 0"]
)


@pytest.fixture(scope="module")
def sandbox_reward():
    from rlaif.code.rewards import CodeReward

    code_reward = CodeReward([PARITY], kind="binary", workers=2)

    def sandbox_unit_test(prompts, completions, task_id, **kw):
        programs = [f"text = {completion_text(c)!r}\n" for c in completions]
        return code_reward(programs, task_id=task_id)

    sandbox_unit_test.results = lambda: code_reward.last_results
    yield sandbox_unit_test
    code_reward.close()


def _prompts(toy_prompts):
    return [p.model_copy(update={"metadata": {"task_id": PARITY.task_id}}) for p in toy_prompts(4)]


def _one_step(config_cls, tmp_path, tiny_model_dir, **overrides):
    """One GRPO or RLOO step on the tiny model: 2 prompts x 4 generations per step."""
    settings = dict(
        output_dir=tmp_path / "grpo",
        policy=PolicySpec(path=tiny_model_dir),
        prompts=[tmp_path / "unused.jsonl"],
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=12,
        max_steps=1,
        learning_rate=5e-3,
    )
    return config_cls(**{**settings, **overrides})


def _lora_b_norm(adapter_dir) -> float:
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


def test_grpo_step_with_sandbox_reward(tiny_model_dir, toy_prompts, tmp_path, sandbox_reward):
    prompts = _prompts(toy_prompts)
    cfg = _one_step(GRPOConfig, tmp_path, tiny_model_dir)
    result = run_grpo(cfg, prompts=prompts, reward_funcs=[sandbox_reward])
    assert result.counts["steps"] == 1
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    print("GRPO step:", {k: line[k] for k in ("reward", "reward_std", "grad_norm", "loss")})
    assert 0.0 < line["reward"] < 1.0  # the programs ran: some passed, some failed
    assert {r.status for r in sandbox_reward.results()} == {"passed", "failed"}
    assert line["reward_std"] > 0 and line["grad_norm"] > 0
    assert "rewards/sandbox_unit_test/mean" in line
    assert _lora_b_norm(result.adapter) > 0  # LoRA B starts at zero: the step changed the adapter
    assert (result.adapter / "tokenizer.json").is_file()


def test_rloo_step_with_sandbox_reward(
    tiny_model_dir, toy_prompts, tmp_path, sandbox_reward, assert_changed_in_fp32
):
    prompts = _prompts(toy_prompts)
    cfg = _one_step(RLOOConfig, tmp_path, tiny_model_dir, output_dir=tmp_path / "rloo", lora=None)
    result = run_rloo(cfg, prompts=prompts, reward_funcs=[sandbox_reward])
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    assert line["grad_norm"] > 0
    assert result.adapter is None and (result.base_model / "model.safetensors").is_file()
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(result.base_model / "model.safetensors"))
    assert_changed_in_fp32(start, after)  # a bf16 save would change every tensor without training


def test_grpo_passes_mixed_type_metadata_unchanged(tiny_model_dir, toy_prompts, tmp_path):
    """Instruction prompts mix a number (a word limit) and a phrase (a closing line) under one key;
    Arrow cannot hold that column, so the metadata must reach the reward function by row lookup."""
    kinds = [
        [{"kind": "max_words", "value": 20}],
        [{"kind": "end_phrase", "value": "Thank you."}],
        [{"kind": "bullets", "value": 3}, {"kind": "keyword", "value": "river"}],
        [],
    ]
    prompts = [
        p.model_copy(update={"metadata": {"instructions": k, "source": f"s{i}"}})
        for i, (p, k) in enumerate(zip(toy_prompts(4), kinds, strict=True))
    ]
    expected = {p.id: p.metadata for p in prompts}
    seen: list[tuple] = []

    def length_reward(prompts, completions, instructions, source, prompt_id, **kw):
        for pid, inst, src in zip(prompt_id, instructions, source, strict=True):
            seen.append((pid, inst, src))
        return [float(len(completion_text(c)) % 3) for c in completions]

    cfg = _one_step(GRPOConfig, tmp_path, tiny_model_dir, max_completion_length=8)
    result = run_grpo(cfg, prompts=prompts, reward_funcs=[length_reward])
    assert result.counts["steps"] == 1
    assert len(seen) == 8  # one step: 2 prompts x 4 generations
    for pid, inst, src in seen:
        assert inst == expected[pid]["instructions"] and src == expected[pid]["source"]
    numbers = [i["value"] for _, inst, _ in seen for i in inst if i["kind"] in ("max_words", "bullets")]
    assert numbers and all(type(v) is int for v in numbers)  # not widened to float or text
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    assert "rewards/length_reward/mean" in line
