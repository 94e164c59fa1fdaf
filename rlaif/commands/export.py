"""``rlaif export RUN_DIR --format trl|hf --out DIR [--round K|all]``: a run's pairs, ready for TRL.

Why: a run keeps its pairs (``round_<k>/pairs/pairs.jsonl``) with the prompt as a message list but
chosen/rejected as plain strings plus provenance, a mix TRL's trainers do not take as is. The export
writes TRL's conversational preference format: ``prompt`` a list of messages, ``chosen`` and
``rejected`` a list with one assistant message each, plus the provenance columns ``id``, ``round``,
``source``, ``soft_label`` and ``margin`` (TRL's DPOTrainer drops the columns it does not use).

- ``--format trl``: ``DIR/train.jsonl``, one row per line; ``load_dataset("json", data_dir=DIR)``
  or ``data_files="DIR/train.jsonl"``;
- ``--format hf``: ``datasets.Dataset.save_to_disk(DIR)``; ``datasets.load_from_disk(DIR)``.

Guarantees: only rounds whose pairs stage finished (its ``manifest.json`` exists) are exported; with
``--round all`` an unfinished or empty round is left out and named on stderr, never silently; the
export is built in a sibling directory and renamed into place, so ``DIR`` is either the complete
export or absent (an existing non-empty ``DIR`` is refused unless ``--overwrite``). The counts per
round are printed as JSON on stdout.

Non-guarantees: the pairs' ``metadata``, judgment and execution ids are not exported (they stay in
the run directory); the pairs stage's filter is already applied, the dropped pairs are not exported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

import typer

from rlaif.commands.output import emit
from rlaif.errors import ConfigError
from rlaif.records import PreferencePair, pair_to_trl_row, read_jsonl, write_jsonl

PAIRS_FILE = Path("pairs") / "pairs.jsonl"
MANIFEST = "manifest.json"
_ROUND_DIR = re.compile(r"round_(\d+)")


def round_dirs(run_dir: Path) -> dict[int, Path]:
    """Every ``round_<k>`` directory with k >= 1 (round 0 is the starting policy's evaluation)."""
    found = {}
    for path in run_dir.iterdir():
        match = _ROUND_DIR.fullmatch(path.name)
        if match and path.is_dir() and int(match.group(1)) >= 1:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def _finished_pairs(round_dir: Path) -> Path | None:
    """The round's filtered pairs file, or None when its pairs stage has not finished."""
    pairs = round_dir / PAIRS_FILE
    return pairs if pairs.is_file() and (pairs.parent / MANIFEST).is_file() else None


def parse_round(text: str) -> int | None:
    """``all`` -> None, else a round number >= 1."""
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--round must be a round number (1, 2, ...) or 'all', got {text!r}")
    return int(text)


def select_rounds(run_dir: Path, round_index: int | None) -> tuple[dict[int, Path], dict[int, str]]:
    """(round -> finished pairs file, round -> why it is left out); errors name what is missing."""
    if not run_dir.is_dir():
        raise ConfigError(f"run directory not found: {run_dir}")
    rounds = round_dirs(run_dir)
    if not rounds:
        raise ConfigError(f"{run_dir}: no round_<k> directories (not a run directory, or no round ran yet)")
    if round_index is not None:
        if round_index not in rounds:
            have = ", ".join(str(k) for k in rounds)
            raise ConfigError(f"{run_dir}: round {round_index} not found (rounds present: {have})")
        pairs = _finished_pairs(rounds[round_index])
        if pairs is None:
            raise ConfigError(
                f"{rounds[round_index] / PAIRS_FILE}: missing or unfinished (no {MANIFEST} next to it); "
                "finish the run first (rlaif run resumes it)"
            )
        return {round_index: pairs}, {}
    chosen, skipped = {}, {}
    for k, path in rounds.items():
        pairs = _finished_pairs(path)
        if pairs is None:
            skipped[k] = "pairs stage not finished"
        else:
            chosen[k] = pairs
    if not chosen:
        raise ConfigError(f"{run_dir}: no round has finished pairs ({run_dir}/round_<k>/{PAIRS_FILE})")
    return chosen, skipped


def trl_row(pair: PreferencePair, round_index: int) -> dict[str, Any]:
    """TRL's conversational row plus flat provenance columns (Arrow-friendly: no free-form dicts)."""
    row = pair_to_trl_row(pair)
    row.update(
        id=pair.id, round=round_index, source=pair.source, soft_label=pair.soft_label, margin=pair.margin
    )
    return row


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """A fresh sibling directory to build the export in (created with the user's umask)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out}: already exists and is not empty (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.exporting")
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    return tmp


def _write(rows: list[dict[str, Any]], fmt: str, target: Path) -> None:
    if fmt == "trl":
        write_jsonl(target / "train.jsonl", rows)
        return
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(target))


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def export_pairs(
    run_dir: Path,
    fmt: Literal["trl", "hf"],
    out: Path,
    round_index: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the selected rounds' pairs to ``out``; returns the counts that the command prints."""
    sources, skipped = select_rounds(Path(run_dir), round_index)
    rows, counts = [], {}
    for k, path in sources.items():
        pairs = read_jsonl(path, PreferencePair)
        counts[k] = len(pairs)
        rows.extend(trl_row(p, k) for p in pairs)
    if not rows:
        raise ConfigError(f"{run_dir}: the selected rounds hold no pairs (every pair was filtered out)")
    out = Path(out)
    tmp = _prepare_out(out, overwrite)
    try:
        _write(rows, fmt, tmp)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "out": str(out),
        "format": fmt,
        "pairs": len(rows),
        "rounds": {str(k): n for k, n in counts.items()},
        "skipped_rounds": {str(k): why for k, why in skipped.items()},
    }


def export_command(
    run_dir: Path = typer.Argument(..., help="The run directory (runs/<name>)."),
    fmt: str = typer.Option(
        ..., "--format", help="trl: train.jsonl (load_dataset('json')); hf: save_to_disk."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write the export to."),
    round_: str = typer.Option("all", "--round", help="A round number, or 'all' for every finished round."),
    overwrite: bool = typer.Option(False, help="Replace a non-empty --out directory."),
) -> None:
    """Export a run's preference pairs in TRL's conversational format (DPOTrainer takes them as is)."""
    import sys

    if fmt not in ("trl", "hf"):
        raise ConfigError(f"--format must be 'trl' or 'hf', got {fmt!r}")
    summary = export_pairs(run_dir, fmt, out, parse_round(round_), overwrite)  # type: ignore[arg-type]
    for k, why in summary["skipped_rounds"].items():
        print(f"round {k} left out: {why}", file=sys.stderr)
    emit(json.dumps(summary, indent=2))


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
