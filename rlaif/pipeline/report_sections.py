"""Each stage kind's part of ``metrics.json``: a function ``(metrics, group, summary, stage_dir)`` that
files a stage's manifest summary under its section (``rounds``, ``feedback``, ``pairs``, ``training``).

Guarantees: the sections and their keys are those the report template, ``rlaif report`` and earlier
run directories use; a section reads only the manifest's summary and the stage's own files.
"""

from __future__ import annotations

import json
from pathlib import Path


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def no_section(metrics: dict, group: str, summary: dict, stage_dir: Path) -> None:
    return None


def eval_section(metrics: dict, group: str, summary: dict, stage_dir: Path) -> None:
    metrics["rounds"].append(summary.get("metrics", {}))


def feedback_section(metrics: dict, group: str, summary: dict, stage_dir: Path) -> None:
    keys = ("counts", "drops", "length", "stats", "inputs", "invalid_reasons")
    metrics["feedback"][group] = {k: summary.get(k, {}) for k in keys}


def pairs_section(metrics: dict, group: str, summary: dict, stage_dir: Path) -> None:
    metrics["pairs"][group] = {k: summary.get(k, {}) for k in ("counts", "drops", "length")}
    metrics["examples"] += [dict(e, round=group) for e in summary.get("examples", [])[:2]]


def train_section(metrics: dict, group: str, summary: dict, stage_dir: Path) -> None:
    curve = [
        {k: v for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for r in _read_jsonl(stage_dir / "metrics.jsonl")
    ]
    metrics["training"][group] = {
        "summary": summary.get("metrics", {}),
        "counts": summary.get("counts", {}),
        "curve": curve,
        "skipped": summary.get("skipped"),
        "reward_model": summary.get("reward_model"),
    }
