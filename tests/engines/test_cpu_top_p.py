"""rlaif's top-p for vLLM on CPU (rlaif/engines/cpu_top_p.py): the same nucleus as vLLM's sort, and
installed in the engine's worker, where it samples the same texts as vLLM's own sampler."""

from __future__ import annotations

import pytest

from rlaif.engines.base import Sampling

CONV = [{"role": "user", "content": "Write a function that adds two numbers."}]


def test_the_nucleus_from_the_top_tokens_is_vllms_nucleus():
    import torch
    from vllm.v1.sample.ops import topk_topp_sampler

    from rlaif.engines import cpu_top_p

    vllm_sort = getattr(cpu_top_p, "_original", None) or topk_topp_sampler.apply_top_k_top_p_pytorch
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 5000, generator=gen) * 2
    peaks = torch.randint(0, 5000, (30,), generator=gen)
    logits[:, peaks] += torch.rand(40, 30, generator=gen) * 20  # a language model's few likely tokens
    logits[:4] = torch.randn(4, 5000, generator=gen) * 0.1  # flat: the top 256 hold < p, so sorted
    p = torch.rand(40, generator=gen) * 0.9 + 0.05
    p[7] = 1.0  # a request without top_p in a batch with some: vLLM's sort decides it
    expected = vllm_sort(logits.clone(), None, p, allow_cpu_sync=True)

    got, unsettled = cpu_top_p.nucleus_from_top_tokens(logits.clone(), p)
    assert unsettled.nonzero().squeeze(1).tolist() == [0, 1, 2, 3, 7]
    settled = ~unsettled
    assert torch.equal(torch.isinf(got[settled]), torch.isinf(expected[settled]))
    kept = (~torch.isinf(expected[settled])).sum(1)
    assert kept.min() >= 1 and kept.max() < 256  # the nucleus, not the whole vocabulary
    assert torch.equal(got[settled][~torch.isinf(got[settled])], logits[settled][~torch.isinf(got[settled])])

    previous = cpu_top_p._original
    cpu_top_p._original = vllm_sort
    try:
        whole = cpu_top_p.apply_top_k_top_p_without_sort(logits.clone(), None, p, allow_cpu_sync=True)
    finally:
        cpu_top_p._original = previous
    assert torch.equal(whole, expected)  # unsettled rows through vLLM's own function

    # tokens of equal logits at the boundary: both keep as many, and the same values, maybe not the same ids
    tied = torch.tensor([[5.0, 3.0, 3.0, 3.0, 0.0, -1.0]])
    p = torch.tensor([0.75])  # the top token holds 0.71, each 3.0 0.1: one of the three is kept
    ours = cpu_top_p.nucleus_from_top_tokens(tied.clone(), p, top_tokens=4)[0]
    theirs = vllm_sort(tied.clone(), None, p, allow_cpu_sync=True)
    assert (
        sorted(ours[~torch.isinf(ours)].tolist())
        == sorted(theirs[~torch.isinf(theirs)].tolist())
        == [3.0, 5.0]
    )


def test_the_engine_worker_samples_with_it(vllm_engine):
    """For real: the plugin was installed in the worker process of the session's engine (VLLMEngine
    asks for it), it takes the rows whose top tokens settle the nucleus and sends flat rows to vLLM's
    sort, and a nucleus of one token samples exactly what greedy decoding gives, with it and with
    vLLM's sort (switched in the worker). Equal texts at a larger ``top_p`` are not asserted: where
    tokens of equal logits straddle the boundary the two keep different ones of them, and the
    tiny model's untrained tokens tie."""
    from rlaif.engines import cpu_top_p

    def switch(on: bool) -> dict:  # the session's engine has the TopPControl worker extension
        return vllm_engine.llm.collective_rpc("rlaif_top_p", args=(on,))[0]

    before = switch(True)
    if not before["installed"]:
        pytest.fail(
            f"rlaif's top-p is not installed in the engine's worker ({cpu_top_p.ENV} set by VLLMEngine)"
        )
    prompts = [CONV, "the quick brown fox", "def add(a, b):"]
    greedy = vllm_engine.generate(prompts, Sampling(temperature=0.0, max_tokens=16))
    one_token = Sampling(n=2, temperature=1.0, top_p=1e-4, max_tokens=16, seed=7)
    ours = vllm_engine.generate(prompts, one_token)
    settled = switch(True)
    vllm_engine.generate(prompts, Sampling(n=2, temperature=1.0, top_p=0.999, max_tokens=4, seed=7))
    flat = switch(False)
    try:
        theirs = vllm_engine.generate(prompts, one_token)
    finally:
        switch(True)
    assert settled["top_tokens"] > before["top_tokens"] and settled["sorted"] == before["sorted"]
    assert flat["sorted"] > settled["sorted"]  # 0.999 of a random model's mass is not in its top 256
    expected = [[g[0].token_ids] * 2 for g in greedy]
    assert [[c.token_ids for c in out] for out in ours] == expected
    assert [[c.token_ids for c in out] for out in theirs] == expected
