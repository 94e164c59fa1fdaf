"""release_freed_memory hands glibc's freed heap back to the kernel (measured as this process's RSS)."""

from __future__ import annotations

import ctypes.util

import psutil
import pytest

from rlaif.train.memory import release_freed_memory

MB = 1 << 20


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library found")
def test_freed_heap_memory_goes_back_to_the_kernel():
    proc = psutil.Process()
    # a freed 8 MB mapping raises glibc's mmap threshold to 8 MB: the 1 MB blocks below then come from
    # the heap, as a trainer's activations do after its first step
    first = b"\x01" * (8 * MB)
    del first
    blocks = [b"\x01" * MB for _ in range(300)]
    keep_top = b"\x01" * MB  # allocated last: the freed blocks are not at the heap's top, free() keeps them
    held = proc.memory_info().rss
    del blocks
    after_free = proc.memory_info().rss
    assert release_freed_memory()
    after_release = proc.memory_info().rss
    # without the trim glibc keeps (nearly) all of it; with it, at least 200 of the 300 MB go back
    assert held - after_free < 100 * MB, (held, after_free)
    assert after_free - after_release > 200 * MB, (after_free, after_release)
    assert len(keep_top) == MB


def test_release_without_garbage_is_harmless():
    release_freed_memory()
    assert isinstance(release_freed_memory(), bool)


def _trained_weights(tiny_model_dir, pairs_file, out, **settings):
    from safetensors.torch import load_file

    from rlaif.train.configs import DPOConfig, PolicySpec
    from rlaif.train.dpo import run_dpo

    cfg = DPOConfig(
        output_dir=out,
        policy=PolicySpec(path=tiny_model_dir),
        pairs=[pairs_file],
        lora=None,
        learning_rate=1e-3,
        nll_weight=0.2,
        per_device_train_batch_size=8,
        max_length=256,
        precompute_ref_log_probs=True,
        seed=1,
        **settings,
    )
    result = run_dpo(cfg)
    return load_file(str(result.base_model / "model.safetensors"))


def test_gradient_checkpointing_trains_the_same_weights(tiny_model_dir, dpo_pairs_file, tmp_path):
    """The shipped SmolLM2 pipelines turn gradient checkpointing on to cut the trainer's peak; it must
    not change what is trained: two real full-weight DPO steps (the pipelines' DPO settings) with and
    without it end at the same weights, and both moved away from the start."""
    import torch
    from safetensors.torch import load_file

    start = load_file(str(tiny_model_dir / "model.safetensors"))
    plain = _trained_weights(tiny_model_dir, dpo_pairs_file, tmp_path / "plain")
    checkpointed = _trained_weights(
        tiny_model_dir, dpo_pairs_file, tmp_path / "checkpointed", gradient_checkpointing=True
    )
    assert plain.keys() == checkpointed.keys()
    moved = [k for k in plain if not torch.equal(plain[k], start[k].to(plain[k].dtype))]
    assert len(moved) > len(plain) // 2, "DPO left most tensors unchanged: nothing was trained"
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-4, atol=1e-6, msg=key)
