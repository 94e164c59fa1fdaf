"""Health checks and the run's status: a run whose numbers say it is not working stops, loudly.

Why: a judge that never parses, or a round that makes no pairs, used to end with exit 0 and a report
that looked like any other. The checks (``health.max_judge_invalid_rate``, ``health.min_pairs``), one
per stage kind (the registry, :mod:`rlaif.pipeline.stage_kinds`, says which), run on each stage's
summary right after the stage, and again when a finished stage is skipped on re-run, so a
failed run keeps failing until the cause (or the threshold) changes. Changing a threshold never re-runs
a stage: the thresholds are not part of any stage's config hash.

``status.json`` in the run directory says ``running``, ``ok``, ``failed`` or ``interrupted`` (with the
stage and the reason); the report's banner is drawn from it. A run killed without a chance to write it
(SIGKILL) still says ``running`` on disk, and reads as ``interrupted`` here once its run lock shows
that no process holds the folder (:mod:`rlaif.pipeline.run_lock`).

Non-guarantee: the checks see counts, not quality; a judge that parses but answers at random passes.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from rlaif.config.health import HealthConfig
from rlaif.errors import RlaifError
from rlaif.files import atomic_write_text
from rlaif.pipeline import run_lock

STATUS_FILE = "status.json"


class HealthCheckFailed(RlaifError):
    """A stage finished, but its numbers fail one of the run's health checks."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: health check failed: {reason}")
        self.stage = stage
        self.reason = reason


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def invalid_reasons(judgments: list[dict], top: int = 5) -> dict[str, int]:
    """The commonest reasons judgments were invalid, quoted values folded so similar reasons group."""
    counts = Counter(
        _QUOTED.sub("'…'", str(j.get("invalid_reason") or "unknown"))[:120]
        for j in judgments
        if j.get("status") == "invalid"
    )
    return dict(counts.most_common(top))


def _commonest(reasons: dict[str, int], what: str = "invalid") -> str:
    if not reasons:
        return ""
    reason, n = max(reasons.items(), key=lambda kv: kv[1])
    return f"; commonest {what} reason ({n}x): {reason}"


def _check_min_pairs(stage: str, n: int, made: str, summary: dict, health: HealthConfig, what: str) -> None:
    if n < health.min_pairs:
        why = _commonest(summary.get("drops") or {}, what)
        raise HealthCheckFailed(stage, f"{made} (< health.min_pairs {health.min_pairs}){why}")


def check_feedback(stage: str, summary: dict, health: HealthConfig) -> None:
    """A feedback stage: the judgments' invalid rate and the pairs made."""
    counts, limit = summary.get("counts", {}), health.max_judge_invalid_rate
    n, bad = counts.get("judgments", 0), counts.get("judgments_invalid", 0)
    if limit is not None and n and bad / n > limit:
        raise HealthCheckFailed(
            stage,
            f"{bad} of {n} judgments invalid ({bad / n:.0%} > health.max_judge_invalid_rate "
            f"{limit:g}){_commonest(summary.get('invalid_reasons', {}))}",
        )
    pairs = counts.get("pairs_out", 0)
    made = f"{pairs} pairs made from {counts.get('prompts_in', 0)} prompts"
    _check_min_pairs(stage, pairs, made, summary, health, "drop")


def check_pairs(stage: str, summary: dict, health: HealthConfig) -> None:
    """The pairs stage: the pairs kept after filtering."""
    counts = summary.get("counts", {})
    kept = counts.get("pairs_kept", 0)
    made = f"{kept} of {counts.get('pairs_in', 0)} pairs kept after filtering"
    _check_min_pairs(stage, kept, made, summary, health, "filter")


def check_eval(stage: str, summary: dict, health: HealthConfig) -> None:
    """An evaluation: the win-rate judge's invalid rate."""
    metrics, limit = summary.get("metrics", {}), health.max_judge_invalid_rate
    rate = metrics.get("judge_invalid_rate")
    if limit is not None and isinstance(rate, (int, float)) and rate > limit:
        raise HealthCheckFailed(
            stage,
            f"win-rate judge: {rate:.0%} of judgments invalid (> health.max_judge_invalid_rate "
            f"{limit:g}){_commonest(metrics.get('judge_invalid_reasons', {}))}",
        )


def write_status(
    run_dir: Path,
    status: str,
    stage: str | None = None,
    reason: str | None = None,
    config_file: str | None = None,
    code_version: dict | None = None,
) -> None:
    """Record the run's state; ``config_file`` (the YAML the run was started from) and ``code_version``
    (the rlaif code running it, :mod:`rlaif.pipeline.code_version`) are kept across calls."""
    before = read_status(run_dir)
    record = {
        "status": status,
        "stage": stage,
        "reason": reason,
        "config_file": config_file or before.get("config_file"),
        "code_version": code_version or before.get("code_version"),
        "time": round(time.time(), 3),
    }
    atomic_write_text(Path(run_dir) / STATUS_FILE, json.dumps(record, indent=2) + "\n")


def read_status(run_dir: Path) -> dict:
    """The run's status record; a run directory without one (older runs) reads as unknown, and a
    ``running`` run whose lock was left by a killed process (SIGKILL, crash) reads as interrupted."""
    path = Path(run_dir) / STATUS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"status": "unknown", "stage": None, "reason": None}
    if record.get("status") == "running" and run_lock.run_was_killed(Path(run_dir)):
        record.update(status="interrupted", reason="the run was killed (no chance to record where)")
    return record
