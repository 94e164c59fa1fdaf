"""Every feedback source end to end on the real vLLM engine (tiny random model) over real prompts.

The tiny model writes noise, so these tests check accounting, provenance and determinism, not
quality. Its judges use the test templates in ``assets/`` whose verdicts are guided JSON, so that the
judge path (render -> generate -> parse -> label) runs for real and pairs can form. The done-when
test loads the pair files written here into a ``datasets.Dataset`` and runs one TRL DPO step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fb_scripted import call_source

from rlaif.feedback import load_prompts, rl_cai, rlcd, self_rewarding, sl_cai
from rlaif.records import load_pairs, pairs_to_dataset

pytestmark = pytest.mark.vllm

ASSETS = Path(__file__).parent / "assets"
JSON_JUDGE_SAMPLING = {"temperature": 1.0, "max_tokens": 48}  # the run seeds it; the judge guides the JSON

COMMON_KEYS = {"prompt_id", "model", "adapter", "seeds"}
SOURCE_KEYS = {
    "rlcd": {
        "affix_set",
        "affix_index",
        "positive",
        "negative",
        "template",
        "sampling",
        "attempts",
        "chosen_side",
    },
    "sl_cai": {"chain", "principles", "templates", "critic_model", "rounds"},
    "rl_cai": {"principles", "judge_model", "prob_a", "clamp", "chosen_sample", "sampling"},
    "self_rewarding": {"candidate_scores", "judge_template", "judge_model", "chosen_index", "rejected_index"},
}

CONFIGS = {
    "rlcd": {"sampling": {"max_tokens": 24}},
    "rlcd_rescore": {
        "sampling": {"max_tokens": 24},
        "rescore": {},
    },
    "sl_cai": {
        "rounds": 2,
        "few_shot": 0,  # the worked examples do not fit the tiny model's 1024-token context
        "response": {"max_tokens": 24},
        "critique": {"max_tokens": 24},
        "revision": {"max_tokens": 24},
    },
    "rl_cai": {
        "sampling": {"max_tokens": 24},
        "clamp": [0.4, 0.6],
    },
    "self_rewarding": {
        "sampling": {"max_tokens": 24},
    },
}
JUDGES = {  # the run's judge: block for the sources with a judge slot (SourceContext.judge)
    "rlcd_rescore": {"template": str(ASSETS / "json_pairwise.j2"), "sampling": JSON_JUDGE_SAMPLING},
    "rl_cai": {
        "template": str(ASSETS / "json_principle.j2"),
        "sampling": JSON_JUDGE_SAMPLING,
        "both_orders": False,  # text verdicts from one order are 0/1, so no ties
    },
    "self_rewarding": {
        "template": str(ASSETS / "json_rubric.j2"),
        "sampling": {"temperature": 1.0, "max_tokens": 48},
    },
}
SEED = 11  # the run-time seed every source is called with (SourceContext.seed)
FUNCTIONS = {
    "rlcd": rlcd,
    "rlcd_rescore": rlcd,
    "sl_cai": sl_cai,
    "rl_cai": rl_cai,
    "self_rewarding": self_rewarding,
}


@pytest.fixture(scope="module")
def real_prompts(shared_data):
    """Three short HH-harmless conversations and two MT-Bench questions."""
    hh = load_prompts(shared_data / "hh-rlhf" / "harmless-base_test.jsonl.gz", limit=60)
    short = [p for p in hh if sum(len(m.content) for m in p.messages) < 300][:3]
    return short + load_prompts(shared_data / "mt-bench" / "question.jsonl", limit=2)


@pytest.fixture(scope="module")
def lora_adapter(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter with random (non-zero) weights, so the adapted policy differs from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter") / "round1"
    get_peft_model(model, config).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def runs(vllm_engine, real_prompts, lora_adapter):
    """Each source run twice with the same seed (for determinism), on the shared engine."""
    adapters = {"self_rewarding": lora_adapter}
    out = {}
    for name, fn in FUNCTIONS.items():
        adapter = adapters.get(name)
        out[name] = tuple(
            call_source(
                fn,
                real_prompts,
                vllm_engine,
                CONFIGS[name],
                seed=SEED,
                adapter=adapter,
                judge=JUDGES.get(name),
            )
            for _ in range(2)
        )
    return out


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_counts_add_up(runs, real_prompts, name):
    result = runs[name][0]
    stats = result.stats
    assert stats.prompts_in == len(real_prompts) == 5
    assert stats.pairs_out == len(result.pairs)
    assert stats.pairs_out + sum(stats.drops.values()) == stats.prompts_in
    assert len(result.dropped) == sum(stats.drops.values())
    assert set(stats.length) >= {"mean_ratio", "frac_chosen_longer"}
    assert stats.pairs_out >= 1, f"{name}: no pair formed ({stats.drops})"


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_provenance_is_complete(runs, real_prompts, name, vllm_engine):
    result = runs[name][0]
    source = "rlcd" if name.startswith("rlcd") else name
    judgment_ids = {j.id for j in result.judgments}
    prompt_ids = {p.id for p in real_prompts}
    assert len({p.id for p in result.pairs}) == len(result.pairs)
    for pair in result.pairs:
        assert pair.source == source and pair.round == 0
        missing = (COMMON_KEYS | SOURCE_KEYS[source]) - set(pair.metadata)
        assert not missing, f"{name}: provenance lacks {missing}"
        assert pair.metadata["prompt_id"] in prompt_ids
        assert pair.metadata["model"] == vllm_engine.model_name
        assert all(isinstance(s, int) for s in pair.metadata["seeds"].values())
        assert set(pair.judgment_ids) <= judgment_ids
        if name in ("rlcd_rescore", "rl_cai", "self_rewarding"):
            assert pair.judgment_ids, f"{name}: pair without judgments"
    for judgment in result.judgments:
        assert judgment.judge_model == vllm_engine.model_name and judgment.template_hash


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_deterministic_for_a_seed(runs, name):
    first, second = runs[name]
    assert [p.model_dump() for p in first.pairs] == [p.model_dump() for p in second.pairs]
    assert first.stats == second.stats


def test_source_specific_outcomes(runs, lora_adapter):
    rl = runs["rl_cai"][0]
    assert all(p.soft_label == pytest.approx(0.6) for p in rl.pairs)  # clamped to [0.4, 0.6]
    assert all(j.principle for j in rl.judgments)
    rescored = runs["rlcd_rescore"][0]
    assert all(p.metadata["rescore"]["action"] in ("keep", "flip") for p in rescored.pairs)
    sl = runs["sl_cai"][0]
    assert len(sl.sft_records) >= sl.stats.pairs_out
    assert all(len(p.metadata["chain"]) == 2 for p in sl.pairs)
    sr = runs["self_rewarding"][0]
    assert all(p.metadata["adapter"] == lora_adapter for p in sr.pairs)
    assert all(j.metadata.get("adapter") == lora_adapter for j in sr.judgments)
    assert all(p.margin > 0 for p in sr.pairs)


def test_self_instruct_on_the_real_engine(vllm_engine, real_prompts):
    config = {
        **CONFIGS["self_rewarding"],
        "self_instruct": {"num_prompts": 4, "num_examples": 2, "sampling": {"max_tokens": 32}},
    }
    result = call_source(
        self_rewarding, real_prompts, vllm_engine, config, seed=SEED, judge=JUDGES["self_rewarding"]
    )
    counters = result.stats.counters
    accounted = (
        counters["self_instruct_accepted"]
        + counters["self_instruct_dropped_invalid"]
        + counters["self_instruct_dropped_near_duplicate"]
    )
    assert counters["self_instruct_requested"] == 4 == accounted
    assert result.stats.prompts_in == len(result.new_prompts) == counters["self_instruct_accepted"]
    assert result.stats.balanced
    for prompt in result.new_prompts:
        assert set(prompt.metadata["example_ids"]) <= {p.id for p in real_prompts}


def test_prompt_longer_than_the_context_is_dropped_not_fatal(vllm_engine, real_prompts):
    from rlaif.records import Message, PromptRecord

    huge = PromptRecord(id="huge", messages=[Message(role="user", content="tell me more " * 800)])
    result = call_source(rlcd, [*real_prompts[:2], huge], vllm_engine, CONFIGS["rlcd"], seed=SEED)
    assert result.stats.drops.get("prompt_too_long") == 1 and result.stats.balanced
    (dropped,) = [d for d in result.dropped if d.reason == "prompt_too_long"]
    assert dropped.prompt_id == "huge" and "context is 1024" in dropped.detail


def test_pair_files_train_one_dpo_step(runs, tiny_model_dir, tmp_path):
    """Done-when: the pair files the sources wrote load into a Dataset and drive a real TRL DPO step."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    files = [
        runs[name][0].write(tmp_path / name)["pairs"]
        for name in ("rlcd", "sl_cai", "rl_cai", "self_rewarding")
    ]
    pairs = load_pairs(files)
    assert {p.source for p in pairs} == {"rlcd", "sl_cai", "rl_cai", "self_rewarding"}
    dataset = pairs_to_dataset(pairs)
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and len(dataset) == len(pairs)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=len(dataset),
        learning_rate=1e-3,
        max_length=512,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    output = trainer.train()
    assert output.global_step == 1
    assert torch.isfinite(torch.tensor(output.training_loss))
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed, "one DPO step changed no weights"
