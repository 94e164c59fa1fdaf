"""Do Constitutional AI revisions fix the instruction the original answer broke? Checked by code.

SL-CAI trains on revisions and assumes each one is better than the answer it revises (the pair says so
by construction). On instruction prompts that assumption can be checked: run the instruction checker
(rlaif.instructions) on the original answer and on the final revision of every SL-CAI record and count

- fixed: the original fails, the revision passes (what SL-CAI hopes for);
- broken: the original passes, the revision fails;
- the fix rate (fixed / originals that fail), and a paired sign test on fixed vs broken.

With ``--pairs`` it also checks RL-CAI labels: among pairs on which the checker disagrees (one reply
follows the instruction, one does not), how often the AI label chose the one that follows it (0.5 is a
coin).

    .venv/bin/python benchmarks/cai_revision_fixes.py runs/constitutional_smollm2 \\
        [--prompts prompts/instructions/train.jsonl]

Reads only the run's files: SL-CAI records from sft/feedback/sft.jsonl and, where a round's feedback
source is sl_cai (revision preferences), round_*/feedback/sft.jsonl; the pairs of every round as
labelled (round_*/feedback/pairs.jsonl) and as trained on (round_*/pairs/pairs.jsonl). Starts no
engine.
Records whose prompt id is not in the prompts file, or whose prompt has no instructions, are counted
as unscored, never silently skipped. Prompts the source dropped have no record; the run's own stats
count them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class InputError(Exception):
    """A user-facing problem with an input file: one line, no traceback."""


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a bad line is an error naming the file and line."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return rows


def instructions_by_id(prompts: list[dict]) -> dict[str, list[dict]]:
    return {p["id"]: p.get("instructions") or [] for p in prompts if "id" in p}


def _prompt_id(row: dict, path: Path) -> str:
    pid = (row.get("metadata") or {}).get("prompt_id")
    if not pid:
        raise InputError(f"{path}: record {row.get('id', '?')} has no metadata.prompt_id")
    return pid


def revision_fixes(records: list[dict], specs: dict[str, list[dict]], path: Path) -> dict:
    """SL-CAI SFT records (completion = final revision, metadata.initial_response) -> fix counts."""
    from rlaif.instructions import check_all
    from rlaif.tasks.metric import sign_test_p

    counts = {"records": len(records), "unscored": 0, "fixed": 0, "broken": 0, "both_pass": 0, "both_fail": 0}
    by_kind: dict[str, list[int]] = {}
    for row in records:
        inst = specs.get(_prompt_id(row, path))
        original = (row.get("metadata") or {}).get("initial_response")
        if not inst or original is None:
            counts["unscored"] += 1
            continue
        before, after = check_all(original, inst), check_all(row["completion"], inst)
        key = {(False, True): "fixed", (True, False): "broken", (True, True): "both_pass"}.get(
            (before, after), "both_fail"
        )
        counts[key] += 1
        if not before:
            slot = by_kind.setdefault(inst[0]["kind"], [0, 0])
            slot[0] += after
            slot[1] += 1
    failed = counts["fixed"] + counts["both_fail"]
    passed = counts["broken"] + counts["both_pass"]
    scored = failed + passed
    counts["original_pass_rate"] = round(passed / scored, 4) if scored else None
    counts["revised_pass_rate"] = (
        round((counts["fixed"] + counts["both_pass"]) / scored, 4) if scored else None
    )
    counts["fix_rate"] = round(counts["fixed"] / failed, 4) if failed else None
    counts["break_rate"] = round(counts["broken"] / passed, 4) if passed else None
    counts["sign_test_p"] = float(f"{sign_test_p(counts['fixed'], counts['broken']):.3g}")
    counts["fix_rate_by_kind"] = {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())}
    return counts


def label_agreement(pairs: list[dict], specs: dict[str, list[dict]], path: Path) -> dict:
    """Preference pairs -> how often the chosen reply is the one the checker passes, where they differ."""
    from rlaif.instructions import check_all, wilson_interval

    right = wrong = tied = unscored = 0
    for row in pairs:
        inst = specs.get(_prompt_id(row, path))
        if not inst:
            unscored += 1
            continue
        c, r = check_all(row["chosen"], inst), check_all(row["rejected"], inst)
        if c == r:
            tied += 1
        elif c:
            right += 1
        else:
            wrong += 1
    n = right + wrong
    lo, hi = wilson_interval(right, n) if n else (0.0, 1.0)
    return {
        "pairs": len(pairs),
        "unscored": unscored,
        "checker_tied": tied,
        "checker_disagrees": n,
        "label_agrees": right,
        "agreement": round(right / n, 4) if n else None,
        "agreement_ci95": [round(lo, 4), round(hi, 4)],
    }


def _revision_files(run_dir: Path) -> list[tuple[str, Path]]:
    """SL-CAI records: the SFT stage's (``sl_cai_revisions``) and those of rounds whose feedback
    source is ``sl_cai`` (``round_<k>_revisions``: revision-preference DPO). None at all is an error."""
    found = [("sl_cai_revisions", run_dir / "sft" / "feedback" / "sft.jsonl")]
    found += [(f"{p.parts[-3]}_revisions", p) for p in sorted(run_dir.glob("round_*/feedback/sft.jsonl"))]
    found = [(name, path) for name, path in found if path.is_file()]
    if not found:
        raise InputError(
            f"{run_dir}: no SL-CAI records (sft/feedback/sft.jsonl or round_*/feedback/sft.jsonl)"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--prompts", type=Path, default=Path("prompts/instructions/train.jsonl"))
    args = parser.parse_args(argv)
    try:
        specs = instructions_by_id(read_jsonl(args.prompts))
        report = {}
        for name, sft_path in _revision_files(args.run_dir):
            report[name] = revision_fixes(read_jsonl(sft_path), specs, sft_path)
        for pairs_path in sorted(args.run_dir.glob("round_*/feedback/pairs.jsonl")):
            name = f"{pairs_path.parts[-3]}_label_agreement"
            report[name] = label_agreement(read_jsonl(pairs_path), specs, pairs_path)
        for pairs_path in sorted(args.run_dir.glob("round_*/pairs/pairs.jsonl")):
            name = f"{pairs_path.parts[-3]}_trained_pairs_label_agreement"
            report[name] = label_agreement(read_jsonl(pairs_path), specs, pairs_path)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
