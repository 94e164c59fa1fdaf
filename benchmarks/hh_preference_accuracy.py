"""Does training change which of two human-labelled replies a policy finds more likely? Preference
accuracy by log-likelihood on Anthropic's HH harmlessness test pairs, per model, paired across models.

A judge-independent figure for harmlessness: nothing in a run's training sees these pairs or their
labels, and no judge is asked anything. For each pair (the conversation so far, the reply humans
preferred, the reply they rejected) every model scores both replies under its own chat template
(vLLM prompt log-probabilities, the engine's ``score_continuations``). A model is "right" on a pair
when it finds the preferred reply more likely. Two readings, both reported and neither chosen after
the fact:

- ``sum``: total log-probability of the reply (what the model would rather say, length included);
- ``mean``: mean log-probability per token (length cancelled).

Reported per model: accuracy with its Wilson interval and, against the first and the previous model,
the paired change (pairs newly right / newly wrong, exact sign test). Pairs a model cannot score (a
reply too long for ``--max-model-len``) are counted and left out of every model's figures.

    PYTHONPATH=. .venv/bin/python benchmarks/hh_preference_accuracy.py \\
        --models start=models/smollm2-135m-instruct sl=runs/X/sft/train/model rl=runs/X/round_1/train/model \\
        [--limit 500] [--data ../shared/data/hh-rlhf/harmless-base_test.jsonl.gz]

Non-guarantee: accuracy near 50% on HH harmless is common for small models (the rejected replies are
often fluent and on-topic); the paired change, not the level, is the figure to read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base_test.jsonl.gz"
READINGS = ("sum", "mean")


def score_pairs(model: str, pairs, max_model_len: int) -> list[tuple[list[float], list[float]] | None]:
    """Per pair, the per-token log-probs of (chosen, rejected) under ``model``; None if either is too long."""
    from rlaif.engines.base import score_continuations
    from rlaif.engines.vllm import VLLMEngine

    prompts = [p.prompt for p in pairs for _ in range(2)]
    replies = [reply for p in pairs for reply in (p.chosen, p.rejected)]
    with VLLMEngine(
        model, max_model_len=max_model_len, kv_cache_memory_bytes=1 << 29, progress=False
    ) as engine:
        scores = score_continuations(engine, prompts, replies)
    out = []
    for i in range(len(pairs)):
        chosen, rejected = scores[2 * i], scores[2 * i + 1]
        out.append(None if not chosen or not rejected else (chosen, rejected))
    return out


def rights(scored, keep: list[int], reading: str) -> dict[str, bool]:
    def value(lp: list[float]) -> float:
        return sum(lp) if reading == "sum" else sum(lp) / len(lp)

    return {str(i): value(scored[i][0]) > value(scored[i][1]) for i in keep}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", nargs="+", required=True, help="NAME=DIR, in order (the first is the baseline)"
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--save", default=None, help="also write every pair's per-model verdicts as JSON")
    args = ap.parse_args()

    from rlaif.instructions import wilson_interval
    from rlaif.judges.eval import load_eval_pairs
    from rlaif.tasks.metric import paired_change

    named = []
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep or not (Path(path) / "config.json").is_file():
            raise SystemExit(f"--models: '{item}' is not NAME=DIR with a config.json in DIR")
        named.append((name, path))
    pairs, skipped = load_eval_pairs(args.data, limit=args.limit)
    print(
        f"{len(pairs)} pairs from {args.data}; skipped: { {k: len(v) for k, v in skipped.items()} }",
        flush=True,
    )

    start = time.perf_counter()
    scored = {}
    for name, path in named:
        t0 = time.perf_counter()
        scored[name] = score_pairs(path, pairs, args.max_model_len)
        print(f"scored {name} in {time.perf_counter() - t0:.0f}s", flush=True)
    keep = [i for i in range(len(pairs)) if all(scored[n][i] is not None for n, _ in named)]
    print(f"{len(keep)} pairs scored by every model ({len(pairs) - len(keep)} too long for one of them)")

    results = []
    verdicts = {reading: [rights(scored[n], keep, reading) for n, _ in named] for reading in READINGS}
    for k, (name, path) in enumerate(named):
        row = {"model": name, "path": path}
        for reading in READINGS:
            right = verdicts[reading][k]
            hits = sum(right.values())
            lo, hi = wilson_interval(hits, len(right))
            row[reading] = {"accuracy": round(hits / len(right), 4), "ci95": [round(lo, 4), round(hi, 4)]}
            if k:
                row[reading]["vs_first"] = paired_change(verdicts[reading][0], right)
                row[reading]["vs_previous"] = paired_change(verdicts[reading][k - 1], right)
        results.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "data": args.data,
        "pairs": len(pairs),
        "scored_pairs": len(keep),
        "results": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    if args.save:
        Path(args.save).write_text(json.dumps({**summary, "verdicts": verdicts}))


if __name__ == "__main__":
    main()
