"""One round of the shipped instruction loop (``pipelines/rlcd_instructions.yaml``) on the tiny model,
as small as it runs: 4 prompts, 8 tokens, one DPO step; and the run's engine events in order, for the
tests that check when the run starts and releases its own vLLM engine."""

from __future__ import annotations

from pathlib import Path

from rlaif.train.common import read_metrics

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "rlcd_instructions.yaml"


def one_round(tmp_path: Path, model: Path, *eval_overrides: str) -> list[str]:
    """The overrides of ``PIPELINE`` for that round; ``eval_overrides`` say what its evaluations measure."""
    return [
        f"output_dir={tmp_path / 'runs'}",
        f"policy.path={model}",
        "prompts.limit=4",
        "feedback.chunk_size=4",
        "feedback.options.sampling.max_tokens=8",
        "feedback.options.num_generations=1",
        *eval_overrides,
        "engine.kv_cache_gb=0.25",
        "rounds=1",
        "dpo.max_steps=1",
        "dpo.per_device_train_batch_size=2",
        "health.min_pairs=0",
    ]


def run_events(run_dir: Path) -> list[dict]:
    return read_metrics(run_dir / "metrics.jsonl")


def engine_events(run_dir: Path, *kinds: str) -> list[tuple[str, object]]:
    """``(event, stage or model or engines)`` of the run's events of those kinds, in order."""
    seq = [(e["event"], e.get("stage") or e.get("model") or e.get("engines")) for e in run_events(run_dir)]
    return [s for s in seq if s[0] in kinds]
