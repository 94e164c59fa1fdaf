"""Per-round metrics to tensorboard, beside the trainers' own curves, so one ``tensorboard --logdir
<run>/tensorboard`` shows the whole run: each trainer writes under its stage's folder
(``round_1/train``, ``final``, ...; see :meth:`rlaif.config.RunConfig.tracking_dir`), and this module
writes the round-level numbers under ``rounds/`` with the round as the step.

What is logged: every number of the report's ``metrics.json`` per round (:func:`round_scalars`): the
evaluation (``eval/pass@1``, ``eval/instruction_pass_rate``, ``eval/win_rate_vs_previous``,
``eval/judge_invalid_rate``, ...), the feedback stage's counts and statistics (``feedback/...``: judge
invalid counts, pairs out) and the pair filter's counts (``pairs/pairs_kept``, ...); counts keyed by
free text (``judge_invalid_reasons``) are left out.

Guarantees: called after every stage, it appends only what is new or changed since the last call
(``rounds/logged.json`` keeps what was written), so a resumed run does not repeat a point; the record
of what was written is replaced atomically after the event file is flushed. Non-guarantees: a value
that changed (a stage re-run with other settings) is written again at the same step, and tensorboard
then shows both points; wandb and trackio get the trainers' curves, not these round metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rlaif.files import atomic_write_json

LOG_FOLDER = "tensorboard"
ROUNDS_FOLDER = "rounds"
_SECTIONS = ("feedback", "pairs")
_SECTION_PARTS = ("counts", "stats")


def _numbers(prefix: str, value: Any, depth: int = 2) -> dict[str, float]:
    """``value``'s numeric leaves as ``prefix/key/sub`` (nested mappings down to ``depth``)."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, (int, float)):
        return {prefix: float(value)} if math.isfinite(value) else {}
    if isinstance(value, dict) and depth > 0 and not prefix.endswith("reasons"):  # free text as keys
        out: dict[str, float] = {}
        for key, sub in value.items():
            out.update(_numbers(f"{prefix}/{key}", sub, depth - 1))
        return out
    return {}


def _round_of(group: str) -> int | None:
    """``round_3`` -> 3; other groups (``sft``, ``final``) have no round of their own here."""
    head, _, tail = group.partition("_")
    return int(tail) if head == "round" and tail.isdigit() else None


def round_scalars(metrics: dict) -> dict[tuple[str, int], float]:
    """Every per-round number of a run's metrics document, keyed by (tag, round)."""
    out: dict[tuple[str, int], float] = {}
    for row in metrics.get("rounds", []):
        step = row.get("round")
        if not isinstance(step, int):
            continue
        for key, value in row.items():
            if key != "round":
                out.update({(tag, step): v for tag, v in _numbers(f"eval/{key}", value).items()})
    for section in _SECTIONS:
        for group, summary in (metrics.get(section) or {}).items():
            step = _round_of(group)
            if step is None or not isinstance(summary, dict):
                continue
            for part in _SECTION_PARTS:
                numbers = _numbers(section, summary.get(part), depth=2)
                out.update({(tag, step): v for tag, v in numbers.items()})
    return out


def log_round_metrics(run_dir: Path, metrics: dict, report_to: list[str]) -> int:
    """Write the run's per-round numbers not yet logged to ``<run>/tensorboard/rounds``; returns how many
    points were written (0 without tensorboard in ``report_to``)."""
    if "tensorboard" not in report_to:
        return 0
    folder = Path(run_dir) / LOG_FOLDER / ROUNDS_FOLDER
    record = folder / "logged.json"
    logged = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    new = {
        (tag, step): v
        for (tag, step), v in round_scalars(metrics).items()
        if logged.get(f"{tag}@{step}") != v
    }
    if not new:
        return 0
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    try:
        for (tag, step), value in sorted(new.items(), key=lambda item: (item[0][1], item[0][0])):
            writer.add_scalar(tag, value, step)
        writer.flush()
    finally:
        writer.close()
    logged.update({f"{tag}@{step}": v for (tag, step), v in new.items()})
    atomic_write_json(record, logged)
    return len(new)
