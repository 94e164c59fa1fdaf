"""The bodies of the pipeline's stages; each takes its stage directory and returns its typed summary
(:mod:`rlaif.pipeline.summary`). The feedback stage is :mod:`rlaif.pipeline.feedback_stage`, the final
RL round :mod:`rlaif.pipeline.final_round`, evaluation :mod:`rlaif.pipeline.evaluation`.

Stages call the components (feedback sources, pair filters, trainers, sandbox) and own nothing but the
wiring: seeds, file names, and the per-round values of option blocks resolved once for the run.
"""

from __future__ import annotations

from pathlib import Path

from rlaif.config import RunConfig
from rlaif.pairs import filter_pairs as apply_filter
from rlaif.pairs import length_summary
from rlaif.pipeline.context import RunContext
from rlaif.pipeline.resolve import stage_policy
from rlaif.pipeline.summary import (
    BuildSummary,
    ModelOutputs,
    PairsOutputs,
    PairsSummary,
    TrainSummary,
    train_summary,
)
from rlaif.records import PreferencePair, read_jsonl, write_jsonl
from rlaif.tasks.catalog import corpus as named_corpus
from rlaif.tiny_model import CHAT_TEMPLATE, TinyModelSpec, build_tiny_model

# -- inputs -----------------------------------------------------------------------------------------


def build_policy(cfg: RunConfig, stage_dir: Path) -> BuildSummary:
    """Build the tiny policy (demo/smoke runs); 'demo:code' pre-trains on the demo's training tasks."""
    b = cfg.policy.build_tiny
    corpus = b.corpus
    if corpus is not None and (builder := named_corpus(corpus)) is not None:
        import jinja2

        template = jinja2.Template(CHAT_TEMPLATE)
        text = builder(lambda conv: template.render(messages=conv, bos_token="<|bos|>"))
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
    return BuildSummary(outputs=ModelOutputs(model=str(path)), counts={"pretrain_steps": b.steps})


# -- pairs ------------------------------------------------------------------------------------------


def filter_pairs(ctx: RunContext, stage_dir: Path, pairs_file: Path) -> PairsSummary:
    """The run's one pair filter (``pairs.options``); every dropped pair is listed with its reason."""

    pairs = read_jsonl(pairs_file, PreferencePair)
    kept, dropped = apply_filter(pairs, ctx.run.block("pairs.options"))
    out = stage_dir / "pairs.jsonl"
    write_jsonl(out, kept)
    drops: dict[str, int] = {}
    for _, reason in dropped:
        drops[reason] = drops.get(reason, 0) + 1
    write_jsonl(stage_dir / "dropped.jsonl", [{"id": p.id, "reason": r} for p, r in dropped])
    return PairsSummary(
        outputs=PairsOutputs(pairs=str(out)),
        counts={"pairs_in": len(pairs), "pairs_kept": len(kept), "pairs_dropped": len(dropped)},
        drops=drops,
        length=length_summary(kept),
        examples=[p.model_dump(mode="json") for p in kept[:3]],
    )


# -- training ---------------------------------------------------------------------------------------


def train_dpo(ctx: RunContext, stage_dir: Path, pairs_file: Path, round_index: int) -> TrainSummary:
    """One DPO round on the filtered pairs, from the current policy (kept as is when no pair is left)."""
    pairs = read_jsonl(pairs_file, PreferencePair)
    if not pairs:
        ctx.say(f"[round_{round_index}/train] no pairs survived filtering: the policy is kept as it is")
        return TrainSummary(counts={"pairs": 0, "steps": 0}, skipped="no pairs")
    dpo_cfg = ctx.run.runtime(
        "dpo",
        defaults={"output_dir": stage_dir, "seed": ctx.cfg.seed + round_index},
        forced={"policy": stage_policy(ctx.policy), "pairs": [pairs_file]},
    )
    from rlaif.train.dpo import run_dpo
    from rlaif.train.progress import TrainingProgress

    label = f"round_{round_index}/train"
    local = lambda: run_dpo(dpo_cfg, pairs=pairs, callbacks=[TrainingProgress(f"  {label}")])  # noqa: E731
    return train_summary(launched_or_local(ctx, "dpo", dpo_cfg, stage_dir, label, local))


def launched_or_local(ctx: RunContext, stage: str, cfg, stage_dir: Path, label: str, local):
    """The stage's result: under ``accelerate launch`` (``rlaif train STAGE`` in each process, from
    the stage config written beside its outputs) when the run's ``train:`` block asks for several
    processes or an accelerate config, else ``local()`` in this process."""
    launch = ctx.cfg.train
    if not launch.distributed:
        return local()
    from rlaif.train.launch import run_stage

    log = stage_dir / f"{stage}.launch.log"
    ctx.say(f"[{label}] {stage} under accelerate launch, {launch.num_processes} processes (log: {log})")
    return run_stage(stage, cfg, launch, stage_dir)
