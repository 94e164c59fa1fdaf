"""Are a run's preference pairs right about instruction following? The checker's verdict on each pair's
chosen and rejected reply (the run itself never calls the checker).

    PYTHONPATH=. .venv/bin/python benchmarks/instruction_pair_quality.py runs/NAME/round_1/pairs/pairs.jsonl \\
        [--prompts prompts/instructions/train.jsonl]

Per file: how many pairs have only the chosen reply following its instruction ("right"), only the
rejected one ("wrong"), both or neither (no signal about the instruction), with an exact sign test of
right against wrong, and the mean length ratio chosen/rejected (length bias). The same split by
whether each reply answers its request at all (``answers``: rlaif.instructions.answers_request) and
by "follows AND answers" (``strict``): a judge that likes replies made of the instruction's own words
("<<my title>>", "Thank you.") shows up as many ``answers`` pairs "wrong" while the checker's look right.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quality(pair_rows: list[dict], prompts: dict[str, dict]) -> dict:
    """``prompts``: prompt id -> its record (``instructions``, and ``task``: the bare request)."""
    from rlaif.instructions import answers_request, check_all
    from rlaif.tasks.metric import sign_test_p

    counts = {"right": 0, "wrong": 0, "both_follow": 0, "neither_follows": 0, "no_instructions": 0}
    split = {name: {"right": 0, "wrong": 0, "both": 0, "neither": 0} for name in ("answers", "strict")}
    ratios = []
    for p in pair_rows:
        record = prompts.get(p["metadata"].get("prompt_id", "")) or {}
        specs = record.get("instructions")
        if not specs:
            counts["no_instructions"] += 1
            continue
        c, r = check_all(p["chosen"], specs), check_all(p["rejected"], specs)
        key = (
            "right" if c and not r else "wrong" if r and not c else "both_follow" if c else "neither_follows"
        )
        counts[key] += 1
        ratios.append(len(p["chosen"]) / max(1, len(p["rejected"])))
        request = record.get("task") or ""
        ca, ra = (answers_request(t, request, specs) for t in (p["chosen"], p["rejected"]))
        for name, (x, y) in (("answers", (ca, ra)), ("strict", (c and ca, r and ra))):
            split[name][
                "right" if x and not y else "wrong" if y and not x else "both" if x else "neither"
            ] += 1
    return {
        "pairs": len(pair_rows),
        **counts,
        "sign_test_p": float(f"{sign_test_p(counts['right'], counts['wrong']):.3g}"),
        "mean_length_ratio_chosen_over_rejected": round(sum(ratios) / len(ratios), 3) if ratios else None,
        **{
            name: {**v, "sign_test_p": float(f"{sign_test_p(v['right'], v['wrong']):.3g}")}
            for name, v in split.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+")
    ap.add_argument("--prompts", default=str(REPO / "prompts" / "instructions" / "train.jsonl"))
    args = ap.parse_args()
    prompts = {}
    for line in Path(args.prompts).read_text().splitlines():
        row = json.loads(line)
        prompts[row["id"]] = row
    for path in args.pairs:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        print(json.dumps({"file": path, **quality(rows, prompts)}))


if __name__ == "__main__":
    main()
