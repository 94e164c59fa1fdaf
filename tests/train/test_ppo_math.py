"""PPO arithmetic against values worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from rlaif.train import ppo_math as pm


def close(a, b, tol=1e-5):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol
    )


def test_gae_gamma_one():
    # mask [1,1,0]: values masked -> [0.2, 0.4, 0]; gamma 1, lambda 0.5
    # t=1: delta = 1.0 + 0 - 0.4 = 0.6          A1 = 0.6
    # t=0: delta = 0.5 + 0.4 - 0.2 = 0.7        A0 = 0.7 + 0.5 * 0.6 = 1.0
    rewards = torch.tensor([[0.5, 1.0, 0.0]])
    values = torch.tensor([[0.2, 0.4, 9.0]])  # 9.0 sits on padding and must be ignored
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = pm.gae_advantages(rewards, values, mask, gamma=1.0, lam=0.5)
    assert close(adv, [[1.0, 0.6, 0.0]])
    assert close(ret, [[1.2, 1.0, 0.0]])


def test_gae_discounted():
    # gamma 0.9, lambda 0.8: t=1: A1 = 0.6; t=0: delta = 0.5 + 0.9*0.4 - 0.2 = 0.66, A0 = 0.66 + 0.72*0.6 = 1.092
    rewards = torch.tensor([[0.5, 1.0]])
    values = torch.tensor([[0.2, 0.4]])
    adv, ret = pm.gae_advantages(rewards, values, torch.ones(1, 2), gamma=0.9, lam=0.8)
    assert close(adv, [[1.092, 0.6]])
    assert close(ret, [[1.292, 1.0]])


def test_kl_penalty_per_token_and_score_on_last_real_token():
    # kl = logp - ref = [0.5, -1.0, (pad)]; reward = -0.1 * kl, score 2.0 added at index 1 (last real token)
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0], [-1.0, -1.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rewards, kl = pm.kl_penalised_rewards(logp, ref, torch.tensor([2.0, -1.0]), mask, kl_coef=0.1)
    assert close(kl, [[0.5, -1.0, 0.0], [0.0, 0.0, 1.0]])
    # row 2: kl [0,0,1] -> [-0, -0, -0.1] and the score -1.0 lands on index 2 -> -1.1
    assert close(rewards, [[-0.05, 2.1, 0.0], [0.0, 0.0, -1.1]])


def test_whitening_ignores_padding():
    # masked entries [1,2,3]: mean 2, unbiased variance 1 -> [-1, 0, 1]; padding stays 0
    x = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert close(pm.masked_whiten(x, mask), [[-1.0, 0.0], [1.0, 0.0]], tol=1e-4)
    assert close(pm.masked_whiten(x, mask, shift_mean=False), [[1.0, 2.0], [3.0, 0.0]], tol=1e-4)


def test_clipped_policy_loss():
    # ratios [1.5, 0.5, 1.0], advantages [1, -2, 3], clip 0.2
    # tok1: max(-1.5, -1.2) = -1.2 (clipped); tok2: max(1.0, 1.6) = 1.6 (clipped); tok3: -3 (not clipped)
    # loss = (-1.2 + 1.6 - 3) / 3 = -0.866667; clipfrac 2/3
    # k3 approx KL: (0.5 - ln 1.5) + (-0.5 - ln 0.5) + 0 = 0.094535 + 0.193147 -> / 3 = 0.095894
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, -2.0, 3.0]])
    loss, clipfrac, approx_kl = pm.policy_loss(logp, old, adv, torch.ones(1, 3), cliprange=0.2)
    assert close(loss, -2.6 / 3)
    assert close(clipfrac, 2 / 3)
    assert close(approx_kl, 0.095894)


def test_policy_loss_masks_padding():
    logp = torch.log(torch.tensor([[1.5, 50.0]]))
    adv = torch.tensor([[1.0, 100.0]])
    loss, clipfrac, _ = pm.policy_loss(
        logp, torch.zeros(1, 2), adv, torch.tensor([[1.0, 0.0]]), cliprange=0.2
    )
    assert close(loss, -1.2) and close(clipfrac, 1.0)


def test_clipped_value_loss():
    # v1: clip 0.5 + 0.2 = 0.7: max((1-2)^2, (0.7-2)^2) = 1.69 (clipped)
    # v2: clip 0.5 - 0.2 = 0.3: max((0-0.4)^2, (0.3-0.4)^2) = 0.16 (unclipped)
    # loss = 0.5 * (1.69 + 0.16) / 2 = 0.4625; clipfrac 0.5
    loss, clipfrac = pm.value_loss(
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([[0.5, 0.5]]),
        torch.tensor([[2.0, 0.4]]),
        torch.ones(1, 2),
        cliprange_value=0.2,
    )
    assert close(loss, 0.4625)
    assert close(clipfrac, 0.5)


def test_truncate_at_first_eos_and_missing_eos_penalty():
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]])
    out, mask, has_eos = pm.truncate_at_eos(ids, eos_token_ids=2, pad_token_id=0)
    assert out.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert has_eos.tolist() == [True, False]
    out, mask, has_eos = pm.truncate_at_eos(ids, eos_token_ids=[2, 7], pad_token_id=0)
    assert out.tolist() == [[5, 2, 0, 0], [5, 6, 7, 0]] and has_eos.tolist() == [True, True]
    penalised = pm.apply_missing_eos_penalty(torch.tensor([1.0, 1.0]), torch.tensor([True, False]), 0.5)
    assert close(penalised, [1.0, 0.5])
    assert close(pm.apply_missing_eos_penalty(torch.tensor([1.0]), torch.tensor([False]), None), [1.0])


def test_adaptive_kl_controller():
    # KL 9 vs target 6: error clipped to +0.2 -> beta *= 1 + 0.2 * 100 / 10000 = 1.002
    ctl = pm.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(9.0, n_steps=100)
    assert ctl.value == pytest.approx(0.1002)
    # KL 5.4: error = 5.4/6 - 1 = -0.1 -> beta *= 1 - 0.1 * 100 / 10000 = 0.999
    ctl.update(5.4, n_steps=100)
    assert ctl.value == pytest.approx(0.1002 * 0.999)
    fixed = pm.FixedKLController(0.05)
    fixed.update(100.0, 10)
    assert fixed.value == 0.05


def test_explained_variance():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    m = torch.ones(1, 3)
    assert pm.explained_variance(r.clone(), r, m) == pytest.approx(1.0)
    assert pm.explained_variance(torch.full((1, 3), 2.0), r, m) == pytest.approx(0.0)


def test_running_moments_and_score_normalisation():
    moments = pm.RunningMoments()
    # [1,2,3]: mean 2, population variance 2/3 -> standardised [-1.2247, 0, 1.2247], clipped to [-1, 0, 1]
    out = pm.normalise_scores(torch.tensor([1.0, 2.0, 3.0]), moments, clip=1.0)
    assert close(out, [-1.0, 0.0, 1.0])
    assert moments.mean == pytest.approx(2.0) and moments.var == pytest.approx(2 / 3)
    # adding [5]: all of [1,2,3,5] -> mean 2.75, population variance 8.75 / 4 = 2.1875
    moments.update(torch.tensor([5.0]))
    assert moments.mean == pytest.approx(2.75) and moments.var == pytest.approx(2.1875)
    assert close(pm.normalise_scores(torch.tensor([9.0, -9.0]), None, clip=2.0), [2.0, -2.0])


def test_logprobs_divide_logits_by_temperature():
    # logits [0, ln 3]: softmax [0.25, 0.75]; at T=2: [1, sqrt 3] / (1 + sqrt 3)
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    label = torch.tensor([[1]])
    assert close(pm.logprobs_from_logits(logits, label), [[math.log(0.75)]])
    assert close(pm.logprobs_from_logits(logits, label, 2.0), [[math.log(math.sqrt(3) / (1 + math.sqrt(3)))]])
    assert close(pm.entropy_from_logits(logits), [[-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]])


def test_masked_mean_of_empty_mask_is_zero():
    assert float(pm.masked_mean(torch.tensor([1.0, 2.0]), torch.zeros(2))) == 0.0


def test_sampled_logprobs_recorder():
    # step 1 logits [0, ln 9] at T=2 -> [0, ln 3] -> p = [0.25, 0.75]; token 1 is sampled
    # step 2 logits [ln 9, 0] at T=2 -> [ln 3, 0] -> p = [0.75, 0.25]; token 0 is sampled
    rec = pm.SampledLogprobs(temperature=2.0)
    scaled = rec(torch.tensor([[5]]), torch.tensor([[0.0, math.log(9.0)]]))
    assert close(scaled, [[0.0, math.log(3.0)]])  # sampling sees logits / T
    rec(torch.tensor([[5, 1]]), torch.tensor([[math.log(9.0), 0.0]]))
    assert close(rec.finish(torch.tensor([[1, 0]])), [[math.log(0.75), math.log(0.75)]])


def test_global_whitening_over_two_shards_equals_whitening_the_whole_batch():
    """What each DDP process computes with a sum over processes equals one process on every sample."""
    torch.manual_seed(0)
    x, mask = torch.randn(6, 5), (torch.rand(6, 5) > 0.3).float()
    shards = [(slice(0, 2), x[:2], mask[:2]), (slice(2, 6), x[2:], mask[2:])]  # unequal token counts
    total, count = pm.masked_sum(x, mask), mask.sum()
    squares = sum(pm.masked_sum((sx - total / count) ** 2, sm) for _, sx, sm in shards)
    whole = pm.masked_whiten(x, mask)
    for rows, sx, sm in shards:
        # the two collectives' answers: (sum, count) over every shard, then the squared deviations
        answers = iter([torch.stack([total, count]), squares.reshape(1)])
        out = pm.masked_whiten(sx, sm, all_reduce=lambda t, a=answers: next(a))
        assert torch.allclose(out, whole[rows], atol=1e-6)
        assert not torch.allclose(pm.masked_whiten(sx, sm), whole[rows], atol=1e-3)  # local differs
    mean, var = pm.global_masked_moments(x, mask, lambda t: t)
    assert torch.allclose(mean, pm.masked_mean(x, mask)) and torch.allclose(var, pm.masked_var(x, mask))
