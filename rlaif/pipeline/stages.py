"""The bodies of the pipeline's stages; each takes its stage directory and returns a JSON summary.

A summary has ``outputs`` (paths other stages read), ``counts`` (shown in the event log and report)
and optionally ``metrics``. Stages call the components (feedback sources, pair filters, trainers,
sandbox) and own nothing but the wiring: seeds, chunking, file names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.config import RunConfig, validate_stage_options
from rlaif.pipeline.context import Policy, RunContext, start_chunk
from rlaif.pipeline.health import invalid_reasons
from rlaif.pipeline.inputs import read_prompt_source
from rlaif.pipeline.manifest import run_chunks
from rlaif.records import PreferencePair, read_jsonl, write_jsonl

CODE_SOURCES = {"rlcf"}


# -- inputs -----------------------------------------------------------------------------------------


def build_policy(cfg: RunConfig, stage_dir: Path) -> dict:
    """Build the tiny policy (demo/smoke runs); 'demo:code' pre-trains on the demo's training tasks."""
    from rlaif.tiny_model import CHAT_TEMPLATE, TinyModelSpec, build_tiny_model

    b = cfg.policy.build_tiny
    corpus = b.corpus
    if corpus == "demo:code":
        import jinja2

        from rlaif.demo.tasks import demo_problems, sft_corpus

        template = jinja2.Template(CHAT_TEMPLATE)
        train, _ = demo_problems()
        text = sft_corpus(train, lambda conv: template.render(messages=conv, bos_token="<|bos|>"))
        corpus = stage_dir / "corpus.txt"
        corpus.write_text(text, encoding="utf-8")
    heads = b.hidden_size // 64
    spec = TinyModelSpec(
        vocab_size=b.vocab_size,
        hidden_size=b.hidden_size,
        num_layers=b.num_layers,
        num_heads=heads,
        num_kv_heads=heads,
        intermediate_size=2 * b.hidden_size,
    )
    path = build_tiny_model(
        cfg.policy.path,
        seed=b.seed,
        spec=spec,
        corpus=corpus,
        steps=b.steps,
        learning_rate=b.learning_rate,
        progress=b.steps > 0,
    )
    return {"outputs": {"model": str(path)}, "counts": {"pretrain_steps": b.steps}}


# -- feedback ---------------------------------------------------------------------------------------


def _source_options(
    cfg: RunConfig, model: type | None, round_index: int, chunk: int, adapter: Path | None
) -> Any:
    from rlaif.pipeline.judging import feedback_options
    from rlaif.records import derive_seed

    options = feedback_options(cfg)  # judge.template handed to the source's judge key
    if model is None:
        return options
    fields = getattr(model, "model_fields", {})
    injected = {
        "seed": derive_seed(cfg.seed, "chunk", chunk),
        "round": round_index,
        "adapter": str(adapter) if adapter else None,
    }
    for key, value in injected.items():
        if key in fields and key not in options:
            options[key] = value
    return validate_stage_options(model, options, "feedback.options", cfg.source_file or "config")


def feedback(ctx: RunContext, stage_dir: Path, round_index: int) -> dict:
    """Run the configured source over the prompts in resumable chunks, then merge the chunk outputs."""
    cfg = ctx.cfg
    data = read_prompt_source(cfg.prompts, "prompts")
    items = data.items
    if cfg.feedback.source in CODE_SOURCES:
        return _code_feedback(ctx, stage_dir, items, round_index)
    from rlaif.feedback import SourceContext, resolve_source, run_source, source_config_model
    from rlaif.pairs import PairStats
    from rlaif.records import derive_seed

    resolve_source(cfg.feedback.source)  # fail fast on a bad plug-in spec
    model = source_config_model(cfg.feedback.source)
    engine = ctx.policy_engine()
    judge = ctx.judge_engine()

    def work(chunk: int, prompts: list) -> dict:
        start_chunk(chunk)
        options = _source_options(cfg, model, round_index, chunk, None)  # adapter is bound in the engine
        context = SourceContext(
            seed=derive_seed(cfg.seed, "chunk", chunk), round=round_index,
            adapter=getattr(engine, "adapter", None), chunk=chunk,
        )  # fmt: skip
        res = run_source(cfg.feedback.source, prompts, engine, options, context, judge_engine=judge)
        return {
            "pairs": [p.model_dump(mode="json") for p in res.pairs],
            "judgments": [j.model_dump(mode="json") for j in res.judgments],
            "dropped": [d.model_dump(mode="json") for d in res.dropped],
            "sft": [s.model_dump(mode="json") for s in res.sft_records],
            "new_prompts": [p.model_dump(mode="json") for p in res.new_prompts],
            "stats": res.stats.model_dump(mode="json"),
        }

    chunks = run_chunks(
        items, cfg.feedback.chunk_size, stage_dir / "chunks", work, _progress(ctx, "feedback")
    )
    stats = PairStats(source=cfg.feedback.source)
    for c in chunks:
        s = c["stats"]
        stats.prompts_in += s["prompts_in"]
        stats.pairs_out += s["pairs_out"]
        for reason, n in s["drops"].items():
            stats.add_drop(reason, n)
        for name, n in s.get("counters", {}).items():
            stats.count(name, n)
    pairs = [PreferencePair.model_validate(p) for c in chunks for p in c["pairs"]]
    for p in pairs:
        p.round = round_index
    from rlaif.pairs import length_summary

    stats.length = length_summary(pairs)
    outputs = {
        "pairs": stage_dir / "pairs.jsonl",
        "judgments": stage_dir / "judgments.jsonl",
        "dropped": stage_dir / "dropped.jsonl",
    }
    write_jsonl(outputs["pairs"], pairs)
    write_jsonl(outputs["judgments"], [j for c in chunks for j in c["judgments"]])
    write_jsonl(outputs["dropped"], [d for c in chunks for d in c["dropped"]])
    sft = [s for c in chunks for s in c["sft"]]
    if sft:
        outputs["sft"] = stage_dir / "sft.jsonl"
        write_jsonl(outputs["sft"], sft)
    new_prompts = [p for c in chunks for p in c.get("new_prompts", [])]
    if new_prompts:
        outputs["new_prompts"] = stage_dir / "new_prompts.jsonl"
        write_jsonl(outputs["new_prompts"], new_prompts)
    judgments = [j for c in chunks for j in c["judgments"]]
    counts = {
        "prompts_in": stats.prompts_in,
        "pairs_out": stats.pairs_out,
        "dropped": stats.dropped,
        "judgments": len(judgments),
        "judgments_invalid": sum(1 for j in judgments if j["status"] == "invalid"),
        "prompts_skipped_malformed": len(data.skipped),
    }
    consistent = [j["consistent"] for j in judgments if j.get("consistent") is not None]
    if consistent:
        counts["position_consistency"] = round(sum(consistent) / len(consistent), 4)
    (stage_dir / "stats.json").write_text(stats.model_dump_json(indent=2))
    return {
        "outputs": {k: str(v) for k, v in outputs.items()},
        "counts": counts,
        "drops": stats.drops,
        "length": stats.length,
        "inputs": data.skipped_summary(),
        "invalid_reasons": invalid_reasons(judgments),
    }


def rlcf_options_model():
    """Test-gated pair options plus the sampling settings of the candidates (one config block)."""
    from pydantic import Field

    from rlaif.code.pairs import CodePairConfig

    class RLCFOptions(CodePairConfig):
        temperature: float = Field(1.0, ge=0.0, description="Sampling temperature of the candidates.")
        top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus mass of the candidates.")
        max_tokens: int = Field(256, ge=1, description="Maximum tokens per candidate program.")

    return RLCFOptions


def _code_feedback(ctx: RunContext, stage_dir: Path, problems: list, round_index: int) -> dict:
    """RLCF: sample k programs per problem, run them against the tests, pair passing with failing."""
    from rlaif.code.pairs import CodePairConfig, CodePairStats, build_code_pairs
    from rlaif.engines.base import Sampling
    from rlaif.pipeline.evaluation import code_prompt
    from rlaif.records import derive_seed

    cfg = ctx.cfg
    opts = validate_stage_options(
        rlcf_options_model(), cfg.feedback.options, "feedback.options", cfg.source_file or "config"
    )
    pair_cfg = CodePairConfig(**opts.model_dump(include=set(CodePairConfig.model_fields)))
    engine = ctx.policy_engine()

    def work(chunk: int, chunk_problems: list) -> dict:
        start_chunk(chunk)
        sampling = Sampling(
            temperature=opts.temperature,
            top_p=opts.top_p,
            max_tokens=opts.max_tokens,
            seed=derive_seed(cfg.seed, "rlcf", round_index, chunk),
        )
        res = build_code_pairs(
            chunk_problems,
            engine,
            ctx.sandbox(),
            config=pair_cfg,
            sampling=sampling,
            render=code_prompt,
            round=round_index,
        )
        return {
            "pairs": [p.model_dump(mode="json") for p in res.pairs],
            "executions": [e.model_dump(mode="json") for e in res.executions],
            "stats": res.stats.model_dump(mode="json"),
        }

    chunks = run_chunks(problems, cfg.feedback.chunk_size, stage_dir / "chunks", work, _progress(ctx, "rlcf"))
    stats = CodePairStats(problems=0)
    for c in chunks:
        part = CodePairStats.model_validate(c["stats"])
        for name in (
            "problems",
            "problems_with_pass",
            "problems_with_pair",
            "pairs",
            "candidates",
            "executions",
            "duplicates_removed",
            "sandbox_errors",
        ):
            setattr(stats, name, getattr(stats, name) + getattr(part, name))
        for field in ("status_counts", "no_pair"):
            merged = getattr(stats, field)
            for key, n in getattr(part, field).items():
                merged[key] = merged.get(key, 0) + n
    pairs = [PreferencePair.model_validate(p) for c in chunks for p in c["pairs"]]
    from rlaif.pairs import length_summary

    stats.length = length_summary(pairs)
    outputs = {"pairs": stage_dir / "pairs.jsonl", "executions": stage_dir / "executions.jsonl"}
    write_jsonl(outputs["pairs"], pairs)
    write_jsonl(outputs["executions"], [e for c in chunks for e in c["executions"]])
    (stage_dir / "stats.json").write_text(stats.model_dump_json(indent=2))
    counts = {
        "prompts_in": stats.problems,
        "pairs_out": len(pairs),
        "dropped": sum(stats.no_pair.values()),
        "problems_with_pass": stats.problems_with_pass,
        "executions": stats.executions,
        "sandbox_errors": stats.sandbox_errors,
    }
    return {
        "outputs": {k: str(v) for k, v in outputs.items()},
        "counts": counts,
        "drops": stats.no_pair,
        "length": stats.length,
        "stats": stats.model_dump(mode="json"),
    }


# -- pairs ------------------------------------------------------------------------------------------


def filter_pairs(ctx: RunContext, stage_dir: Path, pairs_file: Path) -> dict:
    from rlaif.pairs import PairFilterConfig, length_summary
    from rlaif.pairs import filter_pairs as apply_filter

    options = validate_stage_options(
        PairFilterConfig, ctx.cfg.pairs.options, "pairs.options", ctx.cfg.source_file or "config"
    )
    pairs = read_jsonl(pairs_file, PreferencePair)
    kept, dropped = apply_filter(pairs, options)
    out = stage_dir / "pairs.jsonl"
    write_jsonl(out, kept)
    drops: dict[str, int] = {}
    for _, reason in dropped:
        drops[reason] = drops.get(reason, 0) + 1
    write_jsonl(stage_dir / "dropped.jsonl", [{"id": p.id, "reason": r} for p, r in dropped])
    examples = [p.model_dump(mode="json") for p in kept[:3]]
    return {
        "outputs": {"pairs": str(out)},
        "counts": {"pairs_in": len(pairs), "pairs_kept": len(kept), "pairs_dropped": len(dropped)},
        "drops": drops,
        "length": length_summary(kept),
        "examples": examples,
    }


# -- training ---------------------------------------------------------------------------------------


def train_dpo(ctx: RunContext, stage_dir: Path, pairs_file: Path, round_index: int) -> dict:
    from rlaif.train.configs import DPOConfig

    pairs = read_jsonl(pairs_file, PreferencePair)
    if not pairs:
        ctx.say(f"[round_{round_index}/train] no pairs survived filtering: the policy is kept as it is")
        return {"outputs": {}, "counts": {"pairs": 0, "steps": 0}, "skipped": "no pairs"}
    options = {"output_dir": str(stage_dir), "seed": ctx.cfg.seed + round_index, **ctx.cfg.dpo}
    options["policy"] = {
        "path": str(ctx.policy.path),
        "adapter": str(ctx.policy.adapter) if ctx.policy.adapter else None,
    }
    options["pairs"] = [str(pairs_file)]
    dpo_cfg = validate_stage_options(DPOConfig, options, "dpo", ctx.cfg.source_file or "config")
    from rlaif.train.dpo import run_dpo
    from rlaif.train.progress import TrainingProgress

    result = run_dpo(dpo_cfg, pairs=pairs, callbacks=[TrainingProgress(f"  round_{round_index}/train")])
    return _train_summary(result)


def _train_summary(result) -> dict:
    data = result.to_json()
    return {
        "outputs": {k: data.get(k) for k in ("base_model", "adapter", "merged_model", "metrics_path")},
        "counts": {k: v for k, v in data.get("counts", {}).items()},
        "metrics": {k: v for k, v in data.get("metrics", {}).items() if isinstance(v, (int, float))},
    }


def policy_from_summary(summary: dict, current: Policy) -> Policy:
    out = summary.get("outputs", {})
    if out.get("merged_model"):
        return Policy(Path(out["merged_model"]))
    if out.get("base_model"):
        return Policy(Path(out["base_model"]), Path(out["adapter"]) if out.get("adapter") else None)
    return current


def train_final(ctx: RunContext, stage_dir: Path) -> dict:
    from rlaif.pipeline.final_round import run_final_round

    return run_final_round(ctx, stage_dir)


# -- evaluation -------------------------------------------------------------------------------------


def evaluate(
    ctx: RunContext, stage_dir: Path, round_index: int, previous: Path | None, label: str | None = None
) -> dict:
    from rlaif.pipeline.evaluation import evaluate_policy

    return evaluate_policy(ctx, stage_dir, round_index, previous, label or f"round {round_index}")


def _progress(ctx: RunContext, what: str):
    """Chunk progress with ETA on stderr (rlaif.progress); chunks read back from disk say "(cached)"."""
    from rlaif.progress import StepProgress

    bar = StepProgress(f"  {what}", total=0, unit="chunks")  # the clock starts before chunk 1

    def report(done: int, total: int, cached: bool = False) -> None:
        if done == 1:
            bar.total = total
            bar.__enter__()
        bar.advance(cached=cached)
        if done >= total:
            bar.__exit__(None, None, None)

    return report
