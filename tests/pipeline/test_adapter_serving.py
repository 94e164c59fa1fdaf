"""``engine.adapter_serving: merged``: a round's LoRA adapter served as plain weights.

Logic tests: the config and ``rlaif validate`` refusals (one line, naming the key), the merged engine
view refusing any adapter but its own. Real tests: the merge keeps the base's dtype; the merged copy
served by vLLM without LoRA gives the log-probabilities of base + adapter in PEFT (and not the base's);
a resumed merge reuses its copy and a newer one deletes it; a LoRA DPO run on the tiny model that
starts from an adapter serves the start and the trained round each merged, on an engine without LoRA
(scoring text for instruction_contrast candidates, refused with LoRA serving), restarts only when the
served adapter changes, deletes the older copy, and a resumed evaluation reuses the merged copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from instruction_round import PIPELINE, engine_events, one_round, run_events

from rlaif.config import EngineConfig
from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError, EngineError
from rlaif.pipeline.compile import compile_run
from rlaif.pipeline.context import MergedAdapterEngine
from rlaif.pipeline.served_model import MARKER, SERVED_DIR, served_model

# -- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "engine", [{"kind": "openai", "url": "http://127.0.0.1:9/v1"}, {"kind": "ray", "replicas": 2}]
)
def test_merged_serving_is_for_the_in_process_engine(engine):
    with pytest.raises(ValueError, match="engine.adapter_serving=merged is for kind=vllm"):
        EngineConfig(**engine, adapter_serving="merged")


def _refused(cfg, *needles: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_run(cfg)
    message = str(info.value)
    assert "\n" not in message and all(n in message for n in needles), message


def test_validate_refuses_an_adapter_of_its_own_on_a_merged_engine(run_config, tmp_path):
    rl_cai = {"source": "rl_cai", "options": {"judge_adapter": str(tmp_path / "critic")}}
    merged = {"adapter_serving": "merged"}
    _refused(
        run_config(engine=merged, feedback=rl_cai), "'feedback.options.judge_adapter'", "adapter_serving"
    )
    assert compile_run(run_config(feedback=rl_cai)).lora_rank == 8  # LoRA serving applies it per request
    judge_engine = {"engine": {"adapter_serving": "merged"}}
    _refused(run_config(judge=judge_engine), "'judge.engine.adapter_serving'", "separate judge")


def test_a_merged_engine_serves_no_lora_and_may_score_text(run_config):
    scoring = {"source": "instruction_contrast", "options": {"num_generations": 2}}
    _refused(run_config(feedback=scoring), "cannot do on an engine serving LoRA", "adapter_serving: merged")
    plan = compile_run(run_config(feedback=scoring, engine={"adapter_serving": "merged"}))
    assert plan.lora_rank is None  # the engine starts without LoRA


class Recorder:
    model_name = "/m/base"

    def __init__(self):
        self.calls = []

    def generate(self, prompts, sampling, adapter=None):
        self.calls.append(("generate", adapter))
        return [[]]

    def score_continuations(self, prompts, continuations, adapter=None):
        self.calls.append(("score", adapter))
        return []


def test_the_merged_view_serves_its_own_adapter_as_plain_requests_only():
    inner = Recorder()
    view = MergedAdapterEngine(inner, Path("/m/base"), Path("/run/round_1/train/adapter"))
    view.generate(["x"], None, adapter="/run/round_1/train/adapter")  # sources name it for provenance
    view.generate(["x"], None)
    view.score_continuations([], [], adapter="/run/round_1/train/adapter")
    assert inner.calls == [("generate", None), ("generate", None), ("score", None)]
    with pytest.raises(EngineError, match="adapter /other was requested .* engine.adapter_serving: lora"):
        view.generate(["x"], None, adapter="/other")
    assert view.model_name == "/m/base+adapter"  # named as LoRA serving names it


# -- the merge itself (transformers / PEFT / vLLM on the tiny model) ---------------------------------


def _random_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random A and B (a fresh adapter's B is zero: merging it would change
    nothing, and a test comparing served log-probabilities could not fail)."""
    import torch
    from peft import get_peft_model

    from rlaif.train.configs import LoraSettings
    from rlaif.train.models import load_causal_lm, peft_lora_config

    torch.manual_seed(seed)
    config = peft_lora_config(LoraSettings(r=8, alpha=16))
    config.init_lora_weights = False
    get_peft_model(load_causal_lm(base), config).save_pretrained(str(out))
    return out


def _bf16_copy(model: Path, out: Path) -> Path:
    import torch

    from rlaif.train.models import load_causal_lm, load_tokenizer, save_full_model

    return save_full_model(load_causal_lm(model, torch.bfloat16), load_tokenizer(model), out)


def test_the_merge_keeps_the_bases_dtype(tiny_model_dir, tmp_path):
    from safetensors import safe_open

    base = _bf16_copy(tiny_model_dir, tmp_path / "bf16")
    merged = served_model(tmp_path / "run", base, _random_adapter(base, tmp_path / "adapter", 1))
    assert json.loads((merged / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(merged / "model.safetensors"), "pt") as fh:
        dtypes = {str(fh.get_tensor(k).dtype) for k in fh.keys()}
    assert dtypes == {"torch.bfloat16"}
    assert (merged / MARKER).is_file() and (merged / "tokenizer_config.json").is_file()


def _peft_log_probs(base: Path, adapter: Path | None, head: list[int], tail: list[int]) -> list[float]:
    import torch

    from rlaif.train.configs import PolicySpec
    from rlaif.train.models import load_policy

    model = load_policy(PolicySpec(path=base, adapter=adapter), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(torch.tensor([head + tail])).logits[0].float().log_softmax(-1)
    return [logits[len(head) + k - 1, tid].item() for k, tid in enumerate(tail)]


@pytest.mark.vllm
def test_merged_serving_is_the_base_plus_adapter_and_a_resume_reuses_it(tiny_model_dir, tmp_path):
    from rlaif.pipeline.engines import build_engine

    run_dir, events = tmp_path / "run", []
    adapter = _random_adapter(tiny_model_dir, tmp_path / "adapter", 0)
    log = lambda event, **data: events.append((event, data))  # noqa: E731
    merged = served_model(run_dir, tiny_model_dir, adapter, log_event=log)
    assert merged.parent == run_dir / SERVED_DIR and [e for e, _ in events] == ["policy_merged"]

    prompt, reply = "Write a function that adds two numbers.", "def add(a, b): return a + b"
    engine = build_engine(EngineConfig(max_model_len=256, kv_cache_gb=0.25), merged, lora_rank=None)
    try:
        (served,) = engine.score_continuations([prompt], [reply])  # refused on a LoRA engine
        head = engine.tokenizer.encode(prompt)
        tail = engine.tokenizer.encode(reply, add_special_tokens=False)
    finally:
        engine.close()
    with_adapter = _peft_log_probs(tiny_model_dir, adapter, head, tail)
    base_only = _peft_log_probs(tiny_model_dir, None, head, tail)
    assert len(served) == len(tail) > 5
    gap = max(abs(a - b) for a, b in zip(served, with_adapter, strict=True))
    # vLLM runs the tiny model in bf16 on CPU (0.05: the tolerance of the engine's own scoring test)
    assert gap < 0.05, (served, with_adapter)
    assert max(abs(a - b) for a, b in zip(served, base_only, strict=True)) > 10 * max(gap, 0.01)

    mtime = (merged / MARKER).stat().st_mtime_ns
    assert served_model(run_dir, tiny_model_dir, adapter, log_event=log) == merged  # resumed run
    assert events[-1][0] == "policy_merge_reused" and (merged / MARKER).stat().st_mtime_ns == mtime
    newer = served_model(run_dir, tiny_model_dir, _random_adapter(tiny_model_dir, tmp_path / "a2", 2))
    assert newer != merged and not merged.exists()
    assert sorted(p.name for p in (run_dir / SERVED_DIR).iterdir()) == [newer.name]


# -- a real run -------------------------------------------------------------------------------------


def _merged_run(tmp_path: Path, model: Path) -> list[str]:
    """One round of the instruction loop that starts from a LoRA adapter and continues it, served
    merged; two candidates per prompt, so the round's feedback scores text on the merged policy."""
    adapter = _random_adapter(model, tmp_path / "start_adapter", 3)
    overrides = one_round(tmp_path, model, "eval.instructions.prompts.limit=4", "eval.max_tokens=8")
    return [
        *overrides,
        f"policy.adapter={adapter}",
        "dpo.lora={r: 8, alpha: 16}",
        "dpo.adapter_mode=continue",
        "feedback.options.num_generations=2",
        "engine.adapter_serving=merged",
    ]


@pytest.mark.vllm
def test_a_lora_run_serves_each_round_merged_and_resumes_on_the_merged_copy(tmp_path, tiny_model_dir, capsys):
    from rlaif.pipeline.runner import Runner

    cfg = load_run_config(PIPELINE, _merged_run(tmp_path, tiny_model_dir))
    run_dir = cfg.run_dir()
    Runner(cfg).run()
    merges = [e for e in run_events(run_dir) if e["event"] == "policy_merged"]
    adapters = [cfg.policy.adapter, str(run_dir / "round_1" / "train" / "adapter")]
    assert [e["adapter"] for e in merges] == adapters
    first, second = (Path(e["model"]) for e in merges)
    assert engine_events(run_dir, "engine_start", "stage_start") == [
        ("stage_start", "round_0/eval"),
        ("engine_start", str(first)),
        ("stage_start", "round_1/feedback"),  # the same policy: no restart
        ("stage_start", "round_1/pairs"),
        ("stage_start", "round_1/train"),
        ("stage_start", "round_1/eval"),
        ("engine_start", str(second)),
    ]
    err = capsys.readouterr().err
    starts = [x for x in err.splitlines() if x.startswith("  starting the policy engine: ")]
    assert len(starts) == 2 and all(x.endswith(", no LoRA") for x in starts), starts
    assert f"  merged {adapters[1]} into {second} in " in err
    # the round's candidates were chosen by scoring text on the merged starting policy
    pairs = [
        json.loads(x) for x in (run_dir / "round_1" / "feedback" / "pairs.jsonl").read_text().splitlines()
    ]
    scored = [v for p in pairs for v in p["metadata"]["candidates"]["contrast"] if v is not None]
    assert pairs and scored, pairs[:1]
    assert {(p["metadata"]["model"], p["metadata"]["adapter"]) for p in pairs} == {
        (f"{tiny_model_dir}+start_adapter", adapters[0])  # provenance as with LoRA serving
    }
    # one model copy on disk: the first merged copy went when the round's replaced it
    assert not first.exists() and [p.name for p in (run_dir / SERVED_DIR).iterdir()] == [second.name]
    assert (run_dir / "round_1" / "train" / "adapter" / "adapter_config.json").is_file()  # training: LoRA
    assert Path(cfg.policy.adapter).is_dir()  # the user's adapter is never touched

    before = len(run_events(run_dir))
    shutil.rmtree(run_dir / "round_1" / "eval")  # as if killed during the round's evaluation
    Runner(cfg).run()
    later = run_events(run_dir)[before:]
    assert [e["event"] for e in later if e["event"].startswith("policy_merge")] == ["policy_merge_reused"]
    assert [e["model"] for e in later if e["event"] == "engine_start"] == [str(second)]
    assert [e["stage"] for e in later if e["event"] == "stage_start"] == ["round_1/eval"]
