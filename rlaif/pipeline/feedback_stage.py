"""The feedback stage: run the configured source over the prompts in resumable chunks, then merge.

Every source, RLCF included, is called the same way through the registry
(``source(prompts, engine, options, context, judge_engine=...)``): ``options`` is the block resolved once
for the run, ``context`` the chunk's :class:`~rlaif.feedback.context.SourceContext` (its seed derives
from the run seed and the chunk number; the adapter is the one the policy engine serves, so pair
provenance names it in every round).

Guarantees: each chunk's result is written atomically before the next starts (a killed stage resumes
at the first missing chunk, see :func:`rlaif.pipeline.manifest.run_chunks`); the merged counts are the
sums of the chunks' (:func:`rlaif.pairs.merge_counts`), and every prompt is a pair or a counted drop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.config.stages import FeedbackConfig
from rlaif.feedback import describe, run_source
from rlaif.feedback.context import SourceContext
from rlaif.feedback.rlcf import CodePairStats
from rlaif.files import atomic_write_text
from rlaif.pairs import PairStats, length_summary, merge_counts
from rlaif.pipeline.context import RunContext
from rlaif.pipeline.health import invalid_reasons
from rlaif.pipeline.inputs import SourceData, read_prompt_source
from rlaif.pipeline.judging import source_judge
from rlaif.pipeline.manifest import run_chunks
from rlaif.pipeline.progress import chunk_progress
from rlaif.pipeline.summary import FeedbackOutputs, FeedbackSummary
from rlaif.records import PreferencePair, derive_seed, write_jsonl

_RECORD_LISTS = {
    "pairs": "pairs",
    "judgments": "judgments",
    "dropped": "dropped",
    "sft": "sft_records",
    "new_prompts": "new_prompts",
    "executions": "executions",
}


def feedback(
    ctx: RunContext, stage_dir: Path, round_index: int, source: FeedbackConfig, block: str
) -> FeedbackSummary:
    """Chunks of ``source``'s output on disk (its options: the resolved ``block``), then the merged
    pairs, records and counts."""

    cfg = ctx.cfg
    data = read_prompt_source(cfg.prompts, "prompts")
    spec = source.source
    code = describe(spec).needs_sandbox
    options = ctx.run.block(block)
    engine = ctx.policy_engine()
    judge = None if code else ctx.judge_engine()
    sandbox = ctx.sandbox() if code else None
    adapter = str(ctx.policy.adapter) if ctx.policy.adapter else None

    def work(chunk: int, prompts: list) -> dict:
        context = SourceContext(
            seed=derive_seed(cfg.seed, "chunk", chunk),
            round=round_index,
            adapter=adapter,
            chunk=chunk,
            judge=source_judge(cfg),
        )
        res = run_source(spec, prompts, engine, options, context, judge_engine=judge, sandbox=sandbox)
        return _chunk_record(res)

    progress = chunk_progress("feedback")
    chunks = run_chunks(data.items, source.chunk_size, stage_dir / "chunks", work, progress)
    pairs = [PreferencePair.model_validate(p) for c in chunks for p in c["pairs"]]
    for p in pairs:
        p.round = round_index
    if code:
        summary = _code_summary(stage_dir, chunks, pairs)
        seconds = summary.stats.get("seconds") or {}
        if seconds:  # where a slow code round spent its time: the engine or the sandbox
            ctx.say(
                "  time in chunks: "
                + ", ".join(f"{k.replace('_', ' ')} {v:.0f}s" for k, v in seconds.items())
            )
        return summary
    return _text_summary(stage_dir, chunks, pairs, data, spec)


def _chunk_record(res: Any) -> dict:
    """One chunk's result as JSON: every record list the source filled, its stats (and code stats)."""
    out = {
        key: [r.model_dump(mode="json") for r in getattr(res, attr)]
        for key, attr in _RECORD_LISTS.items()
        if hasattr(res, attr)
    }
    out["stats"] = res.stats.model_dump(mode="json")
    if getattr(res, "code_stats", None) is not None:
        out["code_stats"] = res.code_stats.model_dump(mode="json")
    return out


def _write_lists(stage_dir: Path, chunks: list[dict], pairs: list, keys: tuple[str, ...]) -> dict[str, str]:
    """pairs.jsonl plus one JSONL per record list; optional lists only when not empty."""
    outputs = {"pairs": stage_dir / "pairs.jsonl"}
    write_jsonl(outputs["pairs"], pairs)
    for key in keys:
        rows = [r for c in chunks for r in c.get(key, [])]
        if rows or key in ("judgments", "dropped", "executions"):
            outputs[key] = stage_dir / f"{key}.jsonl"
            write_jsonl(outputs[key], rows)
    return {k: str(v) for k, v in outputs.items()}


def _text_summary(
    stage_dir: Path, chunks: list[dict], pairs: list, data: SourceData, spec: str
) -> FeedbackSummary:
    stats = merge_counts([PairStats.model_validate(c["stats"]) for c in chunks] or [PairStats(source=spec)])
    stats.source = spec
    stats.length = length_summary(pairs)
    outputs = _write_lists(stage_dir, chunks, pairs, ("judgments", "dropped", "sft", "new_prompts"))
    judgments = [j for c in chunks for j in c.get("judgments", [])]
    counts: dict[str, int | float] = {
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
    atomic_write_text(stage_dir / "stats.json", stats.model_dump_json(indent=2))
    return FeedbackSummary(
        outputs=FeedbackOutputs(**outputs),
        counts=counts,
        drops=stats.drops,
        length=stats.length,
        inputs=data.skipped_summary(),
        invalid_reasons=invalid_reasons(judgments),
    )


def _code_summary(stage_dir: Path, chunks: list[dict], pairs: list) -> FeedbackSummary:

    parts = [CodePairStats.model_validate(c["code_stats"]) for c in chunks]
    stats = merge_counts(parts or [CodePairStats()])
    stats.length = length_summary(pairs)
    outputs = _write_lists(stage_dir, chunks, pairs, ("executions",))
    atomic_write_text(stage_dir / "stats.json", stats.model_dump_json(indent=2))
    counts = {
        "prompts_in": stats.problems,
        "pairs_out": len(pairs),
        "dropped": sum(stats.no_pair.values()),
        "problems_with_pass": stats.problems_with_pass,
        "executions": stats.executions,
        "sandbox_errors": stats.sandbox_errors,
    }
    if stats.repair:  # the repair turn (rlcf options.repair): programs repaired, fixes that pass, pairs
        counts.update(
            {f"repair_{k}": stats.repair.get(k, 0) for k in ("programs", "repairs", "passed", "pairs")}
        )
    return FeedbackSummary(
        outputs=FeedbackOutputs(**outputs),
        counts=counts,
        drops=stats.no_pair,
        length=stats.length,
        stats=stats.model_dump(mode="json"),
    )
