"""Nucleus sampling (``top_p`` < 1) for vLLM on CPU without sorting the whole vocabulary.

Why: vLLM's CPU sampler applies ``top_p`` by sorting every sequence's full vocabulary at every
decoding step (``apply_top_k_top_p_pytorch``). With Qwen2.5's 151,936 tokens and a batch of a hundred
sequences on two cores, that sort is a large share of each step (``benchmarks/engine_top_p_cpu.py``
measures it). The nucleus needs only the most likely tokens: the kept set is every token whose more
likely tokens hold less than ``p`` of the probability, so when the ``K`` most likely tokens
(``torch.topk``, no full sort) hold at least ``p``, the nucleus lies inside them and is found exactly.

How it is installed: rlaif registers :func:`register` as a vLLM general plugin (the entry point
``vllm.general_plugins``), which vLLM calls in each of its processes, the worker that samples
included. It replaces the function only when rlaif's own engine asked for it (``VLLMEngine`` sets
``RLAIF_VLLM_TOP_P=topk`` before starting vLLM; the variable reaches vLLM's processes), on the CPU.
Other vLLM users in the same environment keep vLLM's sampler.

Guarantees: the kept set equals vLLM's sort-based one, except where two tokens of equal probability
straddle the boundary or float rounding of the two summation orders differs there; rows whose top
``K`` hold less than ``p`` (flat distributions), rows with ``top_p`` = 1 and every call with a
``top_k`` go to vLLM's own function unchanged. Non-guarantees: it depends on the name and signature of
a vLLM-internal function (vllm 0.3x); where that function is missing it leaves vLLM alone and says so.
"""

from __future__ import annotations

import logging
import os

ENV = "RLAIF_VLLM_TOP_P"
CHOICES = {"topk": "rlaif's top-p from the most likely tokens", "sort": "vLLM's own sampler"}
TOP_TOKENS = 256  # K: enough for the nucleus of nearly every step of code or chat at temperature <= 1
_logger = logging.getLogger("rlaif.engines.cpu_top_p")
_original = None  # vLLM's function, kept to fall back on
enabled = True  # switched off through ``set_enabled`` (tests compare the two samplers in one engine)
rows = {"top_tokens": 0, "sorted": 0}  # sampled rows settled by the top tokens, and sent to vLLM's sort


def requested_sampler(environ=os.environ) -> str:
    """The sampler ``RLAIF_VLLM_TOP_P`` asks for (``topk`` when unset); an unknown value is an error
    rather than a silent fall back to one of them."""
    from rlaif.errors import EngineError

    value = environ.get(ENV, "topk")
    if value not in CHOICES:
        options = "; ".join(f"{k}: {v}" for k, v in CHOICES.items())
        raise EngineError(f"{ENV}={value!r} is not a top-p sampler ({options})")
    return value


def nucleus_from_top_tokens(logits, p, top_tokens: int = TOP_TOKENS):
    """Mask (in place, as vLLM's function does) every token outside each row's nucleus and return the
    logits and a boolean tensor of the rows the top tokens could not settle (left untouched)."""
    import torch

    k = min(top_tokens, logits.shape[-1])
    probs = logits.softmax(dim=-1, dtype=torch.float32)
    top_probs, top_index = probs.topk(k, dim=-1)  # descending
    mass_above = top_probs.cumsum(dim=-1) - top_probs
    settled = (mass_above[:, -1] + top_probs[:, -1] >= p) & (p < 1.0)
    keep_top = mass_above < p.unsqueeze(1)
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top_index, keep_top)
    keep[~settled] = True
    logits.masked_fill_(~keep, float("-inf"))
    return logits, ~settled


def apply_top_k_top_p_without_sort(logits, k, p, allow_cpu_sync: bool = False):
    """Drop-in for vLLM's ``apply_top_k_top_p_pytorch``: the top-p-only case through the top tokens,
    the unsettled rows and everything else through vLLM's sort."""
    if not enabled or p is None or k is not None:
        return _original(logits, k, p, allow_cpu_sync=allow_cpu_sync)
    logits, unsettled = nucleus_from_top_tokens(logits, p)
    left = unsettled.nonzero().squeeze(1)
    rows["top_tokens"] += len(p) - len(left)
    rows["sorted"] += len(left)
    if len(left):
        logits[left] = _original(logits[left], None, p[left], allow_cpu_sync=allow_cpu_sync)
    return logits


def set_enabled(value: bool) -> dict:
    """Turn the replacement on or off in this process (vLLM's worker, through ``collective_rpc``);
    returns whether it is installed here and the rows counted so far."""
    global enabled
    enabled = value
    return {"installed": installed(), **rows}


class TopPControl:
    """A vLLM worker extension (``worker_extension_cls="rlaif.engines.cpu_top_p.TopPControl"``): with
    it, ``llm.collective_rpc("rlaif_top_p", args=(on,))`` switches the replacement in the worker that
    samples and returns :func:`set_enabled`'s report (the tests compare both samplers in one engine)."""

    def rlaif_top_p(self, on: bool) -> dict:
        return set_enabled(on)


def installed() -> bool:
    try:
        from vllm.v1.sample.ops import topk_topp_sampler
    except ImportError:
        return False
    return topk_topp_sampler.apply_top_k_top_p_pytorch is apply_top_k_top_p_without_sort


def register() -> None:
    """vLLM general plugin: install the replacement in this process when rlaif's engine asked for it
    and vLLM runs on the CPU."""
    global _original
    if os.environ.get(ENV) != "topk" or installed():
        return
    try:
        from vllm.platforms import current_platform
        from vllm.v1.sample.ops import topk_topp_sampler
    except ImportError:
        return
    if not current_platform.is_cpu():
        return
    original = getattr(topk_topp_sampler, "apply_top_k_top_p_pytorch", None)
    if original is None:
        _logger.warning("rlaif: this vLLM has no apply_top_k_top_p_pytorch; top_p keeps vLLM's sort")
        return
    _original = original
    topk_topp_sampler.apply_top_k_top_p_pytorch = apply_top_k_top_p_without_sort
