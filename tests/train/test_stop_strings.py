"""Stop strings in the GRPO / RLOO final round: a completion ends at the token that completes the first
stop string, that token kept; nothing after it is sampled, trained on or counted.

The real tests run one TRL step on the tiny model with a one-character stop string (one the random tiny
model writes within a dozen tokens in most completions, rarely in the first) and inspect what TRL
trained on: the completion ids and loss mask its scoring step returned.
"""

from __future__ import annotations

import pytest

from rlaif.train.common import read_metrics
from rlaif.train.configs import GRPOConfig, PolicySpec, RLOOConfig
from rlaif.train.stop_strings import cut_at_stop, generate_with, raw_decoder, stop_length

# -- logic: cutting hand-made ids --------------------------------------------------------------------

PIECES = {1: "x = 1", 2: "\n``", 3: "`\n", 4: "\n", 5: "print", 6: "<pad>", 7: "`\n\nfoo", 8: "<end>"}
STOP = ["\n```\n\n"]


def _decode(ids) -> str:
    return "".join(PIECES[i] for i in ids)


def _ends_at_stop(ids, decode, stops) -> bool:
    """Whether the row's last token completed its first stop string: the tests' own check of a cut."""
    return stop_length(ids, decode, stops) == len(ids)


def test_a_stop_split_over_tokens_ends_the_row_at_its_last_token():
    row = [1, 2, 3, 4, 5, 6, 6, 6]  # "x = 1" "\n``" "`\n" "\n" -> stop complete; then prose and pads
    assert stop_length(row, _decode, STOP) == 4
    assert cut_at_stop([row], _decode, STOP) == ([[1, 2, 3, 4]], [True])
    assert _ends_at_stop([1, 2, 3, 4], _decode, STOP)
    assert not _ends_at_stop(row, _decode, STOP)  # the stop is inside, not at the end


def test_a_token_overhanging_the_stop_is_kept_whole():
    row = [1, 2, 7, 5, 6]  # "`\n\nfoo" completes the stop and runs on inside the same token
    assert cut_at_stop([row], _decode, STOP) == ([[1, 2, 7]], [True])


def test_rows_without_a_stop_are_unchanged():
    rows = [[1, 5, 4, 8], [1, 2, 3, 5], []]
    assert cut_at_stop(rows, _decode, STOP) == (rows, [False, False, False])
    assert [stop_length(r, _decode, STOP) for r in rows] == [None, None, None]
    assert not any(_ends_at_stop(r, _decode, STOP) for r in rows)


def test_no_stop_strings_cut_nothing_and_decode_nothing():
    def no_decode(ids):
        raise AssertionError("decoded without stop strings")

    rows = [[1, 2, 3, 4], [5]]
    assert cut_at_stop(rows, no_decode, ()) == (rows, [False, False])


def test_the_raw_decoder_keeps_special_tokens_and_spaces(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok.encode("a , b", add_special_tokens=False) + [tok.eos_token_id]
    assert raw_decoder(tok)(ids) == "a , b" + tok.eos_token


def test_the_first_of_several_stop_strings_wins():
    assert stop_length([1, 5, 4, 2, 3, 4], _decode, ["print", "\n```\n\n"]) == 2


def test_generate_gets_the_criteria_inside_and_its_own_generate_back_after():
    class Model:
        def generate(self, **kwargs):
            return kwargs

    model = Model()
    with generate_with(model, stopping_criteria="crit"):
        assert model.generate(input_ids=1) == {"input_ids": 1, "stopping_criteria": "crit"}
    assert model.generate(input_ids=1) == {"input_ids": 1} and "generate" not in vars(model)


@pytest.mark.parametrize(
    "key", ["use_vllm", "use_transformers_continuous_batching", "mask_truncated_completions"]
)
def test_stop_strings_refuse_the_trl_modes_they_do_not_cover(tmp_path, key):
    common = dict(output_dir=tmp_path, policy=PolicySpec(path=tmp_path), prompts=[tmp_path / "p.jsonl"])
    with pytest.raises(ValueError, match=f"stop_strings works .* trainer_args.{key}"):
        GRPOConfig(**common, stop_strings=["e"], trainer_args={key: True})
    GRPOConfig(**common, stop_strings=[], trainer_args={key: True})  # off: TRL's own behaviour
    with pytest.raises(ValueError, match="at least 1 character"):
        RLOOConfig(**common, stop_strings=[""])


# -- real TRL steps on the tiny model ------------------------------------------------------------------

STOP_CHAR = "r"
"""In most of the random tiny model's completions, rarely in their first token, and in neither the EOS
(``<|end|>``) nor the pad token's text."""


@pytest.fixture
def scored(monkeypatch):
    """The batches TRL's scoring step returned (completion ids + loss mask), by trainer class, and
    under ``"<name>/sampled"`` the rows TRL's sampling returned before our cut."""
    from trl import GRPOTrainer, RLOOTrainer

    seen: dict[str, list] = {"grpo": [], "rloo": [], "grpo/sampled": [], "rloo/sampled": []}
    for name, cls in (("grpo", GRPOTrainer), ("rloo", RLOOTrainer)):
        real, real_sample = cls._generate_and_score_completions, cls._generate_single_turn

        def record(self, inputs, _real=real, _name=name):
            out = _real(self, inputs)
            seen[_name].append({k: out[k].cpu() for k in ("completion_ids", "completion_mask")})
            return out

        def record_sampled(self, *args, _real=real_sample, _name=name, **kwargs):
            out = _real(self, *args, **kwargs)
            seen[f"{_name}/sampled"].extend(out[0] if isinstance(out, tuple) else out)
            return out

        monkeypatch.setattr(cls, "_generate_and_score_completions", record)
        monkeypatch.setattr(cls, "_generate_single_turn", record_sampled)
    return seen


def _trained_rows(batches) -> list[list[int]]:
    """Each completion's ids under its loss mask; the mask must be one run of ones from the start."""
    rows = []
    for batch in batches:
        for ids, mask in zip(
            batch["completion_ids"].tolist(), batch["completion_mask"].tolist(), strict=True
        ):
            n = sum(mask)
            assert mask == [1] * n + [0] * (len(mask) - n)
            rows.append(ids[:n])
    return rows


def _texts_reward(texts: list[str]):
    def text_length(prompts, completions, **kw):
        from rlaif.train.rewards import completion_text

        texts.extend(completion_text(c) for c in completions)
        return [float(len(completion_text(c)) % 5) for c in completions]

    return text_length


def _config(cls, tmp_path, tiny_model_dir, name, **overrides):
    settings = dict(
        output_dir=tmp_path / name,
        policy=PolicySpec(path=tiny_model_dir),
        prompts=[tmp_path / "unused.jsonl"],
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=16,
        max_steps=1,
        learning_rate=5e-3,
    )
    return cls(**{**settings, **overrides})


def test_grpo_completions_end_at_the_stop_string_and_nothing_after_it_is_trained(
    tiny_model_dir, toy_prompts, tmp_path, scored
):
    from transformers import AutoTokenizer

    from rlaif.train.grpo import run_grpo

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    raw = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731
    prompts, cap = toy_prompts(4), 16

    free_texts: list[str] = []
    free_cfg = _config(GRPOConfig, tmp_path, tiny_model_dir, "free")
    run_grpo(free_cfg, prompts=prompts, reward_funcs=[_texts_reward(free_texts)])
    free = _trained_rows(scored["grpo"])
    # without stop strings the completions run on past their first stop
    assert sum(stop_length(r, raw, [STOP_CHAR]) not in (None, len(r)) for r in free) >= 2

    scored["grpo"].clear(), scored["grpo/sampled"].clear()
    texts: list[str] = []
    cfg = _config(GRPOConfig, tmp_path, tiny_model_dir, "stop", stop_strings=[STOP_CHAR])
    run_grpo(cfg, prompts=prompts, reward_funcs=[_texts_reward(texts)])
    rows = _trained_rows(scored["grpo"])
    assert len(rows) == len(free) == 8
    stopped = [_ends_at_stop(r, raw, [STOP_CHAR]) for r in rows]
    assert sum(stopped) >= 2
    for row, was_stopped, free_row, sampled in zip(rows, stopped, free, scored["grpo/sampled"], strict=True):
        # generation itself stopped there: transformers only padded the row after it, and none of
        # that padding is trained on (the tiny model's pad is no EOS, as Qwen's is not)
        assert set(sampled[len(row) :]) <= {tok.pad_token_id}
        # the same seed samples the same tokens: each row is the free row, cut at its first stop
        assert row == free_row[: len(row)]
        if not was_stopped:  # ran to the cap or to EOS with no stop on the way
            assert STOP_CHAR not in raw(row) and (len(row) == cap or row[-1] == tok.eos_token_id)
    # the rewards saw the stop string, and past it only the rest of the token that completed it
    for text, row, was_stopped in zip(texts, rows, stopped, strict=True):
        assert text == tok.decode(row, skip_special_tokens=True)
        if was_stopped:
            assert len(text) - text.index(STOP_CHAR) <= len(raw(row[-1:]))

    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    assert line["completions/stopped_ratio"] == pytest.approx(sum(stopped) / 8)
    ended = [s or r[-1] == tok.eos_token_id for s, r in zip(stopped, rows, strict=True)]
    assert line["completions/clipped_ratio"] == pytest.approx(1 - sum(ended) / 8)
    assert line["completions/mean_length"] == pytest.approx(sum(map(len, rows)) / 8)
    free_line = [m for m in read_metrics(free_cfg.output_dir / "metrics.jsonl") if "reward" in m][0]
    assert "completions/stopped_ratio" not in free_line
    assert line["completions/mean_length"] < free_line["completions/mean_length"]


def test_rloo_completions_end_at_the_stop_string(tiny_model_dir, toy_prompts, tmp_path, scored):
    from transformers import AutoTokenizer

    from rlaif.train.grpo import run_rloo

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    raw = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731
    cfg = _config(RLOOConfig, tmp_path, tiny_model_dir, "rloo", stop_strings=[STOP_CHAR], lora=None)
    run_rloo(cfg, prompts=toy_prompts(4), reward_funcs=[_texts_reward([])])
    rows = _trained_rows(scored["rloo"])
    assert len(rows) == 8
    stopped = [_ends_at_stop(r, raw, [STOP_CHAR]) for r in rows]
    assert sum(stopped) >= 2
    for row, was_stopped, sampled in zip(rows, stopped, scored["rloo/sampled"], strict=True):
        assert row == sampled[: len(row)] and set(sampled[len(row) :]) <= {tok.pad_token_id}
        if not was_stopped:
            assert STOP_CHAR not in raw(row) and (len(row) == 16 or row[-1] == tok.eos_token_id)
    (line,) = [m for m in read_metrics(cfg.output_dir / "metrics.jsonl") if "reward" in m]
    assert line["completions/stopped_ratio"] == pytest.approx(sum(stopped) / 8)


# -- our PPO -------------------------------------------------------------------------------------------


@pytest.fixture
def ppo_seen(monkeypatch):
    """What our PPO sampled (raw rows), cut (the rollout) and scored, per iteration."""
    from rlaif.train.ppo import PPOTrainer

    seen: dict[str, list] = {"sampled": [], "rollout": [], "scores": []}
    real_generate, real_rollout, real_score = PPOTrainer._generate, PPOTrainer._rollout, PPOTrainer._score

    def generate(self, rows):
        out = real_generate(self, rows)
        seen["sampled"].append(out[1])
        return out

    def rollout(self, rows):
        seen["rollout"].append(real_rollout(self, rows))
        return seen["rollout"][-1]

    def score(self, rows, rollout):
        seen["scores"].append(real_score(self, rows, rollout))
        return seen["scores"][-1]

    monkeypatch.setattr(PPOTrainer, "_generate", generate)
    monkeypatch.setattr(PPOTrainer, "_rollout", rollout)
    monkeypatch.setattr(PPOTrainer, "_score", score)
    return seen


def _ppo_config(tmp_path, tiny_model_dir, name, **overrides):
    from rlaif.train.configs import PPOConfig

    settings = dict(
        output_dir=tmp_path / name,
        policy=PolicySpec(path=tiny_model_dir),
        max_steps=1,
        batch_size=4,
        num_generations=2,
        minibatch_size=8,
        ppo_epochs=1,
        max_completion_length=16,
        missing_eos_penalty=1.0,
        save_critic=False,
    )
    return PPOConfig(**{**settings, **overrides})


def _ppo_rows(rollout) -> list[list[int]]:
    rows = []
    for ids, mask in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist(), strict=True):
        n = sum(mask)
        assert mask == [1] * n + [0] * (len(mask) - n)
        rows.append(ids[:n])
    return rows


def test_ppo_responses_end_at_the_stop_string_and_pay_no_missing_eos_penalty(
    tiny_model_dir, toy_prompts, tmp_path, ppo_seen
):
    from transformers import AutoTokenizer

    from rlaif.train.ppo import run_ppo

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    raw = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731
    texts: list[str] = []
    one = lambda prompts, completions, **kw: [1.0] * len(completions)  # noqa: E731

    run_ppo(_ppo_config(tmp_path, tiny_model_dir, "free"), prompts=toy_prompts(4), reward_fn=one)
    (free_rollout,) = ppo_seen["rollout"]
    free = _ppo_rows(free_rollout)
    assert sum(stop_length(r, raw, [STOP_CHAR]) not in (None, len(r)) for r in free) >= 2  # runs on
    for key in ppo_seen:
        ppo_seen[key].clear()

    cfg = _ppo_config(tmp_path, tiny_model_dir, "stop", stop_strings=[STOP_CHAR])
    run_ppo(cfg, prompts=toy_prompts(4), reward_fn=_texts_reward(texts))
    (rollout,), (scores,), (sampled,) = ppo_seen["rollout"], ppo_seen["scores"], ppo_seen["sampled"]
    rows = _ppo_rows(rollout)
    stopped = rollout.stopped.tolist()
    assert len(rows) == 8 and sum(stopped) >= 2
    assert stopped == [_ends_at_stop(r, raw, [STOP_CHAR]) for r in rows]
    for row, was_stopped, free_row, sampled_row in zip(rows, stopped, free, sampled, strict=True):
        assert row == free_row[: len(row)]
        assert set(sampled_row[len(row) :]) <= {tok.pad_token_id}  # sampling stopped there
        if not was_stopped:
            assert STOP_CHAR not in raw(row) and (len(row) == 16 or row[-1] == tok.eos_token_id)
    for text, row, was_stopped in zip(texts, rows, stopped, strict=True):
        assert text == tok.decode(row, skip_special_tokens=True)
        if was_stopped:
            assert len(text) - text.index(STOP_CHAR) <= len(raw(row[-1:]))
    # the missing-EOS penalty falls on the responses cut by the length cap only
    ended = rollout.has_eos | rollout.stopped
    expected = scores.raw - 1.0 * (~ended).float()
    assert torch_equal(scores.shaped, expected)
    (line,) = read_metrics(cfg.output_dir / "metrics.jsonl")
    assert line["stop_rate"] == pytest.approx(sum(stopped) / 8)


def torch_equal(a, b) -> bool:
    import torch

    return torch.allclose(a.float(), b.float())


def test_ppo_engine_rollouts_stop_at_the_stop_string_too(
    vllm_engine, tiny_model_dir, toy_prompts, tmp_path, ppo_seen
):
    from transformers import AutoTokenizer

    from rlaif.train.ppo import run_ppo

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    raw = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731
    texts: list[str] = []
    cfg = _ppo_config(tmp_path, tiny_model_dir, "engine", rollout="engine", stop_strings=[STOP_CHAR])
    run_ppo(cfg, prompts=toy_prompts(4), reward_fn=_texts_reward(texts), engine=vllm_engine)
    (rollout,), (sampled,) = ppo_seen["rollout"], ppo_seen["sampled"]
    rows = _ppo_rows(rollout)
    stopped = rollout.stopped.tolist()
    assert len(rows) == 8 and sum(stopped) >= 2
    assert stopped == [_ends_at_stop(r, raw, [STOP_CHAR]) for r in rows]
    for row, was_stopped, sampled_row in zip(rows, stopped, sampled, strict=True):
        assert row == sampled_row  # vLLM itself ended the sample there: nothing was cut
        if not was_stopped:
            assert STOP_CHAR not in raw(row) and (len(row) == 16 or row[-1] == tok.eos_token_id)
    for text, was_stopped in zip(texts, stopped, strict=True):
        assert not was_stopped or STOP_CHAR in text
